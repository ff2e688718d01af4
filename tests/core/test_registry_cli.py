"""`opsloop model ...` as a person runs it: the real CLI entry point on a real MLflow store.

Most commands run in-process through ``opsloop.cli.main`` (the same argument parsing,
error formatting and exit codes as the console script, without paying MLflow's import
per command); the one-line errors are also checked in real ``opsloop`` processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import test_registry_kit as kit
from test_registry_kit import GATE, LOCAL_TABLES_PLUGIN, bad_model, db_template, frames, good_model

from opsloop.cli import context, main

no_outbound_network = kit.no_outbound_network


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def cli_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project folder: the gate, CSV tables through a local plugin, two model files."""
    import skops.io

    root = tmp_path / "proj"
    (root / "localplugins").mkdir(parents=True)
    (root / "localplugins" / "tables.py").write_text(LOCAL_TABLES_PLUGIN, encoding="utf-8")
    (root / "tables").mkdir()
    train, holdout = frames()
    train.to_csv(root / "tables" / "raw.bc_train.csv", index=False)
    holdout.to_csv(root / "tables" / "raw.bc_holdout.csv", index=False)
    (root / "opsloop.toml").write_text(
        '[project]\nname = "cli-test"\n\n[audit]\nactor = "alice"\n\n'
        '[plugins]\npaths = ["localplugins"]\n' + GATE,
        encoding="utf-8",
    )
    (root / ".opsloop").mkdir()
    shutil.copy(db_template(), root / ".opsloop" / "mlflow.db")
    skops.io.dump(good_model().model, root / "good.skops")
    skops.io.dump(bad_model().model, root / "bad.skops")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("OPSLOOP_PLUGINS", raising=False)
    yield root
    project = context._state.get("project")
    if project is not None:
        project.close()  # type: ignore[attr-defined]


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str, code: int | None = 0) -> Ran:
    """``opsloop --project ROOT ARGS`` in-process; checks the exit code when given."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    result = Ran(int(exit_info.value.code or 0), out, err)
    if code is not None:
        assert result.code == code, (args, result)
    return result


def one_line_error(result: Ran) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsloop: error: "), result.err
    return lines[0]


def test_register_promote_rollback_card_ready_history(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = cli_project
    common = ("--training-data", "raw.bc_train", "--target", "target")
    out = run(capsys, root, "model", "register", "bc", str(root / "good.skops"), *common).out
    assert out.strip() == f"registered bc version 1 (models:/bc/1) from {root / 'good.skops'}"
    run(capsys, root, "model", "register", "bc", str(root / "bad.skops"), *common)
    run(capsys, root, "model", "register", "bc", str(root / "good.skops"), *common)

    promoted = run(capsys, root, "model", "promote", "bc", "1").out
    assert "bc@champion -> version 1 (new alias)" in promoted
    assert "ok threshold roc_auc: roc_auc 0.9" in promoted

    refused = run(capsys, root, "model", "promote", "bc", "2", code=1)
    line = one_line_error(refused)
    assert "refused by gate 'threshold accuracy' (accuracy 0." in line
    assert "< minimum 0.85 on raw.bc_holdout (169 rows)" in line

    no_reason = run(capsys, root, "model", "promote", "bc", "2", "--force", code=2)
    assert "--force needs --reason" in one_line_error(no_reason)
    forced = run(
        capsys, root, "model", "promote", "bc", "2", "--force", "--reason", "INC-9 rollforward"
    ).out
    assert "bc@champion -> version 2 from version 1" in forced
    assert "FAILED threshold roc_auc" in forced and "forced: INC-9 rollforward" in forced
    run(capsys, root, "model", "promote", "bc", "3")

    back = run(capsys, root, "model", "rollback", "bc", "--reason", "latency").out
    assert back.strip() == "bc@champion rolled back to version 2 (was 3)"
    assert "rolled back to version 1 (was 2)" in run(capsys, root, "model", "rollback", "bc").out
    empty = run(capsys, root, "model", "rollback", "bc", code=2)
    assert "has no earlier version" in one_line_error(empty)

    meta = run(capsys, root, "model", "meta", "bc", "--owner", "alice", "--risk-class", "high").out
    assert "bc owner: alice" in meta and "bc risk_class: high" in meta
    result = root / "load.json"
    result.write_text(json.dumps({"rps": 250, "p99_ms": 18, "passed": True}))
    recorded = run(
        capsys, root, "model", "evidence", "bc", "1", "--kind", "load_test", "--file", str(result)
    ).out
    assert recorded.startswith("recorded load_test for bc v1: passed (evd_")
    scan = run(capsys, root, "model", "evidence", "bc", "1", "--kind", "security_scan", "--failed")
    assert ": failed (evd_" in scan.out

    ready = run(capsys, root, "model", "ready", "bc", "1", code=1).out
    assert "MISS security scan recorded" in ready and "ok   owner set: owner: alice" in ready
    assert "bc v1: NO-GO (rdy_" in ready
    run(capsys, root, "model", "evidence", "bc", "1", "--kind", "security_scan", "--passed")
    verdict = json.loads(
        run(
            capsys, root, "model", "ready", "bc", "1", "--alias", "challenger", "--json", code=1
        ).out
    )
    assert [i["item"] for i in verdict["items"] if not i["ok"]] == ["rollback target exists"]

    card_dir = root / "cards-out"
    card = run(capsys, root, "model", "card", "bc", "1", "--out", str(card_dir)).out
    assert f"model card {card_dir / 'bc-v1.md'}" in card
    assert "gap(s): intended_use, limitations, human_oversight, lineage.git_commit" in card
    data = json.loads((card_dir / "bc-v1.json").read_text())
    assert data["owner"] == "alice" and data["evaluation"]["verdict"] == "passed"

    history = json.loads(run(capsys, root, "model", "history", "bc", "--json").out)
    moves = [
        (e["action"], e["before"]["version"], e["after"]["version"], e["actor"])
        for e in history["events"]
        if e["action"].startswith(("model.promote", "model.rollback"))
    ]
    assert moves == [
        ("model.promote", None, "1", "alice"),
        ("model.promote.refused", "1", "2", "alice"),
        ("model.promote.forced", "1", "2", "alice"),
        ("model.promote", "2", "3", "alice"),
        ("model.rollback", "3", "2", "alice"),
        ("model.rollback", "2", "1", "alice"),
    ]
    assert history["alias_history"]["champion"] == ["1"]
    table = run(capsys, root, "model", "history", "bc").out
    assert "model.promote.forced" in table and "@champion history (oldest first): 1" in table

    shown = json.loads(run(capsys, root, "model", "show", "bc", "@champion", "--json").out)
    assert shown["version"] == "1" and shown["imported_from"] == str(root / "good.skops")
    assert shown["training_data"]["load_ids"] == ["csv-raw.bc_train"]
    assert shown["metadata"] == {"owner": "alice", "risk_class": "high"}
    assert "sha-256" in run(capsys, root, "model", "show", "bc").out
    listed = [json.loads(x) for x in run(capsys, root, "model", "list", "--json").out.splitlines()]
    assert [(r["version"], r["aliases"]) for r in listed] == [
        ("1", ["champion"]), ("2", []), ("3", []),
    ]  # fmt: skip
    assert "every artifact file matches" in run(capsys, root, "model", "verify", "bc").out


def test_bad_input_is_one_line_and_changes_nothing(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = cli_project
    run(capsys, root, "model", "register", "bc", str(root / "good.skops"), "--training-data",
        "raw.bc_train")  # fmt: skip
    audit_before = (root / ".opsloop" / "audit.jsonl").read_text()
    cases = [
        (("model", "show", "nope"), 2, "model 'nope' is not registered"),
        (("model", "promote", "bc", "9"), 2, "model 'bc' has no version 9"),
        (("model", "alias", "bc", "9", "challenger"), 2, "model 'bc' has no version 9"),
        (("model", "alias", "bc", "1", "latest"), 2, "'latest' is not a valid alias"),
        (("model", "rollback", "bc"), 2, "model 'bc' has no alias 'champion'"),
        (("model", "ready", "bc", "4"), 2, "model 'bc' has no version 4"),
        (("model", "card", "nope"), 2, "model 'nope' is not registered"),
        (("model", "evidence", "bc", "1", "--kind", "pentest"), 2, "unknown evidence kind"),
        (("model", "meta", "bc", "--set", "novalue"), 2, "--set 'novalue' is not KEY=VALUE"),
        (("model", "promote", "bc", "1", "--reason", "x"), 2, "--reason goes with --force"),
        (("model", "register", "bc", "nothing-here"), 2, "neither an existing model path"),
        (("model", "register", "bc", str(root / "good.skops")), 2, "carries no input example"),
    ]
    for args, code, message in cases:
        line = one_line_error(run(capsys, root, *args, code=code))
        assert message in line, (args, line)
    assert (root / ".opsloop" / "audit.jsonl").read_text() == audit_before
    listed = run(capsys, root, "model", "list", "--json").out.splitlines()
    assert [json.loads(x)["version"] for x in listed] == ["1"]


def _opsloop(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("OPSLOOP_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-c", "from opsloop.cli import main; main()", "--project", str(root),
         *args],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip


def test_real_process_errors_are_one_line(
    cli_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = cli_project
    run(capsys, root, "model", "register", "bc", str(root / "good.skops"), "--training-data",
        "raw.bc_train")  # fmt: skip
    folder = next((root / ".opsloop" / "mlartifacts").rglob("model.skops")).parent
    (folder / "model.skops").write_bytes(b"not the model that was registered")
    corrupted = _opsloop(root, "model", "promote", "bc", "1")
    assert corrupted.returncode == 1, corrupted.stderr
    assert corrupted.stderr.strip().splitlines() == [
        "opsloop: error: model bc v1: artifact file 'model.skops' changed since registration; "
        "refusing to point an alias at it"
    ]
    verify = _opsloop(root, "model", "verify", "bc")
    assert verify.returncode == 1
    assert verify.stderr.strip() == "opsloop: bc v1: artifact file 'model.skops' changed"

    toml = root / "opsloop.toml"
    toml.write_text(toml.read_text().replace("max_regression", "max_regresion"))
    typo = _opsloop(root, "model", "promote", "bc", "1")
    assert typo.returncode == 2
    (line,) = typo.stderr.strip().splitlines()
    assert line == (
        f"opsloop: error: {toml}: unknown key 'registry.gate.max_regresion'; remove it or check "
        "its spelling"
    )

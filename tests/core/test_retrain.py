"""Automated retraining on a real MLflow store and a real uvicorn server on loopback:
a good challenger is promoted after its canary, a broken one is rolled back, clients see
no failed request, every step is audited and each run is one RetrainRun record."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import retrain_kit as rk
import test_registry_kit as kit

from opsloop import hookimpl, registry
from opsloop.errors import ConfigError, OpsloopError
from opsloop.records import Approval, RetrainRun, Signal
from opsloop.retrain import POLICY_APPROVER, list_runs, maybe_retrain, retrain

no_outbound_network = kit.no_outbound_network
MODEL = rk.MODEL
POLICY = POLICY_APPROVER.format(model=MODEL)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A project with v1 @champion served by a real uvicorn server (canary share 0.5; the
    policy's 0.75 is written on each challenger)."""
    project, trainer = rk.open_project(tmp_path / "p", rk.policy(canary_share=0.75))
    ref = registry.get_store(project).resolve(MODEL, "champion")
    handle = project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=0)
    try:
        yield {"project": project, "trainer": trainer, "url": handle.url}
    finally:
        handle.stop()
        project.close()


@contextlib.contextmanager
def _watch_version(url: str, seen: set[tuple[str | None, float]]) -> Iterator[None]:
    """Collect (challenger version, canary share) from the server's /version every 50 ms."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not stop.wait(0.05):
                body = client.get(url + "/version").json()
                challenger = body["challenger"]
                seen.add((challenger["version"] if challenger else None, body["canary_share"]))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _entries(project: Any, since: int = 0) -> list[dict[str, Any]]:
    return list(project.audit.entries())[since:]


@pytest.mark.slow  # a real server under load and two canaries: about 10 s after set-up
def test_good_challenger_promoted_bad_one_rolled_back_no_failed_request(
    served: dict[str, Any],
) -> None:
    project, trainer = served["project"], served["trainer"]
    seen: set[tuple[str | None, float]] = set()
    with rk.Load(served["url"]) as load, _watch_version(served["url"], seen):
        # 1. A drift signal about the model: the broken model is retrained, served as
        # challenger, fails its canary and is rolled back; the champion stays version 1.
        trainer.broken = True
        signal = Signal(source="test", type="drift", subject=MODEL, summary="drifted")
        project.emit(signal)
        (bad,) = list_runs(project, MODEL)
        mark = len(_entries(project))
        # 2. By hand (no cooldown): a good model, promoted after its canary.
        trainer.broken = False
        good = retrain(project, MODEL)
    assert bad.trigger == "drift" and bad.signal_id == signal.id
    assert bad.verdict == "rolled_back", bad
    assert (bad.version, bad.champion_before, bad.champion_after) == ("2", "1", "1")
    assert [s["step"] for s in bad.steps] == [
        "train", "register", "evaluate", "challenger", "canary", "rollback",
    ]  # fmt: skip
    assert bad.canary["ok"] is False and bad.canary["failed_requests"] >= 1
    assert "challenger requests failed" in (bad.error or "")

    assert good.verdict == "promoted", good
    assert (good.trigger, good.champion_before, good.champion_after, good.version) == (
        "manual", "1", "3", "3",
    )  # fmt: skip
    assert [s["step"] for s in good.steps] == [
        "train", "register", "evaluate", "challenger", "canary", "promote", "retire",
    ]  # fmt: skip
    assert all(s["status"] == "done" for s in good.steps)
    assert good.canary["ok"] is True and good.canary["failed_requests"] == 0
    assert good.canary["challenger_requests"] >= 20
    # the policy's canary share travelled with each version: the server used 0.75, not the
    # 0.5 it is configured with
    assert registry.metadata(project, MODEL, "3")["canary_share"] == "0.75"
    assert ("3", 0.75) in seen and ("2", 0.75) in seen, seen
    assert registry.current_version(project, MODEL, "challenger") is None
    assert registry.current_version(project, MODEL, "champion") == "3"

    # Clients saw no failed request, though the challenger failed on every one it got.
    assert load.failed == 0 and load.total > 40, (load.statuses, load.errors[:3])
    assert set(load.versions) <= {"1", "2", "3"}

    # One record per run; every step of the bad run audited, with the policy's approvals.
    assert [r.verdict for r in project.records.list(RetrainRun)] == ["rolled_back", "promoted"]
    actions = [(e["action"], e["target"]) for e in _entries(project)[:mark]]
    names = [a for a, _ in actions]
    assert names.index("incident.open") < names.index("retrain.start")  # the alert came first
    for expected in [
        ("retrain.start", MODEL),
        ("retrain.train", MODEL),
        ("model.register", f"{MODEL}/2"),
        ("retrain.register", MODEL),
        ("model.evidence", f"{MODEL}/2"),
        ("retrain.evaluate", MODEL),
        ("action.approve", f"{MODEL}@challenger"),
        ("model.alias", f"{MODEL}@challenger"),
        ("retrain.challenger", MODEL),
        ("retrain.canary", MODEL),
        ("model.alias.remove", f"{MODEL}@challenger"),
        ("retrain.rollback", MODEL),
        ("retrain.finish", MODEL),
    ]:
        assert expected in actions, expected
    ordered = [a for a in actions if a[0].startswith("retrain.")]
    assert ordered[0] == ("retrain.start", MODEL) and ordered[-1] == ("retrain.finish", MODEL)
    approvals = [a for a in project.records.list(Approval) if a.approved_by == POLICY]
    assert [a.action for a in approvals] == [
        "model.challenger", "model.rollback", "model.challenger", "model.promote",
    ]  # fmt: skip
    (finish,) = [e for e in _entries(project)[:mark] if e["action"] == "retrain.finish"]
    assert finish["after"] == {"verdict": "rolled_back", "champion": "1", "run": bad.id}
    assert project.audit.verify().ok

    # A second signal within the cooldown starts nothing; the skip is audited.
    outcome = maybe_retrain(project, Signal(source="test", type="drift", subject=MODEL))
    assert outcome.run is None and outcome.skipped.startswith("cooldown 1h")
    assert _entries(project)[-1]["action"] == "retrain.skip"
    assert len(list_runs(project, MODEL)) == 2


def test_without_approval_the_alias_moves_are_dry_runs(tmp_path: Path) -> None:
    project, _ = rk.open_project(
        tmp_path / "p", rk.policy(auto_approve="false", triggers="[]"), serving=False
    )
    try:
        run = retrain(project, MODEL)
        assert run.verdict == "dry_run" and run.version == "2"
        assert [s["status"] for s in run.steps][-1] == "dry_run"
        assert registry.current_version(project, MODEL, "challenger") is None
        assert any(e["action"] == "action.dry_run" for e in _entries(project))
        # no trigger names drift: a drift signal starts nothing
        project.emit(Signal(source="test", type="drift", subject=MODEL))
        assert len(list_runs(project, MODEL)) == 1
    finally:
        project.close()


def test_a_version_missing_the_gate_is_rejected_and_never_served(tmp_path: Path) -> None:
    project, _ = rk.open_project(
        tmp_path / "p",
        rk.policy(params="{ C = 0.000001 }"),
        serving=False,
    )
    try:
        run = retrain(project, MODEL)
        assert run.verdict == "rejected", run
        assert run.steps[-1]["step"] == "evaluate" and run.steps[-1]["status"] == "rejected"
        assert "threshold" in (run.error or "")
        assert registry.current_version(project, MODEL, "challenger") is None
        assert registry.current_version(project, MODEL, "champion") == "1"
    finally:
        project.close()


def test_missing_policy_and_bad_policy_are_one_line_errors(tmp_path: Path) -> None:
    project, _ = rk.open_project(tmp_path / "p", serving=False)
    try:
        with pytest.raises(ConfigError, match=r"no retraining policy for model 'bc'"):
            retrain(project, MODEL)
    finally:
        project.close()
    with pytest.raises(ConfigError, match="training_data must name a table"):
        rk.open_project(tmp_path / "q", rk.policy(training_data='"bc_train"'), serving=False)
    with pytest.raises(OpsloopError, match="cooldown"):
        rk.open_project(tmp_path / "r", rk.policy(cooldown='"soon"'), serving=False)


def test_cli_runs_the_policy_and_lists_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`opsloop retrain NAME` in-process, with the installed plugins and a CSV-tables plugin."""
    import shutil

    from test_registry_kit import LOCAL_TABLES_PLUGIN, db_template, frames

    from opsloop.cli import context, main

    root = tmp_path / "proj"
    (root / "localplugins").mkdir(parents=True)
    (root / "localplugins" / "tables.py").write_text(LOCAL_TABLES_PLUGIN, encoding="utf-8")
    (root / "tables").mkdir()
    train, holdout = frames()
    train.to_csv(root / "tables" / "raw.bc_train.csv", index=False)
    holdout.to_csv(root / "tables" / "raw.bc_holdout.csv", index=False)
    (root / "opsloop.toml").write_text(
        '[project]\nname = "cli"\n\n[audit]\nactor = "alice"\n\n[plugins]\n'
        'paths = ["localplugins"]\n\n[monitor]\nprofile_on_register = false\n'
        + rk.GATE
        + rk.policy(auto_approve="false"),
        encoding="utf-8",
    )
    (root / ".opsloop").mkdir()
    shutil.copy(db_template(), root / ".opsloop" / "mlflow.db")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("OPSLOOP_PLUGINS", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["--project", str(root), *args])
        out, err = capsys.readouterr()
        return int(info.value.code or 0), out, err

    try:
        code, out, _ = run("retrain", MODEL)
        assert code == 0, out
        lines = out.splitlines()
        assert [line.split()[0] for line in lines[:-1]] == [
            "train", "register", "evaluate", "challenger",
        ]  # fmt: skip
        assert "dry_run" in lines[3]
        assert lines[-1].startswith("rtr_") and "alias moves not approved (dry run)" in lines[-1]

        code, out, _ = run("retrain", MODEL, "--runs", "--json")
        assert code == 0
        (listed,) = json.loads(out)
        assert (listed["kind"], listed["verdict"], listed["version"]) == (
            "retrain_run", "dry_run", "1",
        )  # fmt: skip

        code, _, err = run("retrain", "other")
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "no retraining policy for model 'other'" in err
    finally:
        project = context._state.get("project")
        if project is not None:
            project.close()  # type: ignore[attr-defined]


def test_a_signal_starts_a_background_run_only_when_the_policy_names_it(tmp_path: Path) -> None:
    from opsloop.retrain import wait_for_runs

    project, _ = rk.open_project(
        tmp_path / "p",
        rk.policy(background="true", auto_approve="false", min_severity='"critical"'),
        serving=False,
    )
    try:
        # below min_severity, another type, another model: nothing starts
        project.emit(Signal(source="t", type="drift", subject=MODEL, severity="warning"))
        project.emit(Signal(source="t", type="data_quality", subject=MODEL, severity="critical"))
        project.emit(Signal(source="t", type="drift", subject="other", severity="critical"))
        assert wait_for_runs(project, 60) and list_runs(project) == []
        # model quality (written "quality" in the policy), critical: a run in a thread
        signal = Signal(source="t", type="model_quality", subject=MODEL, severity="critical")
        project.emit(signal)
        assert wait_for_runs(project, 120)
        (run,) = list_runs(project, MODEL)
        assert (run.trigger, run.signal_id, run.verdict) == ("model_quality", signal.id, "dry_run")
    finally:
        project.close()


def test_removing_an_alias_needs_a_store_that_can(tmp_path: Path) -> None:
    from opsloop.plugins import make_manager
    from opsloop.project import Project
    from opsloop.testing import MemoryModelStore

    class AliasOnlyStore(MemoryModelStore):
        """A store that can move aliases but not delete them (delete_alias is optional)."""

        delete_alias = None  # type: ignore[assignment]

    store = AliasOnlyStore()

    class Plugin:
        @hookimpl
        def model_store(self, project: Any) -> Any:
            return store

    (tmp_path / "opsloop.toml").write_text('[project]\nname = "m"\n', encoding="utf-8")
    manager = make_manager()
    manager.register(Plugin(), name="memory")
    project = Project.open(tmp_path, plugins=manager, environ={})
    try:
        with pytest.raises(OpsloopError, match="cannot remove an alias"):
            registry.remove_alias(project, MODEL, "challenger")
    finally:
        project.close()


class _Log:
    """read_predictions answering with a frame the test builds (the canary's input)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, role: str, version: str, n: int, latency: float, **extra: Any) -> None:
        start = len(self.rows)
        self.rows += [
            {"request_id": f"r{start + i}", "row": 0, "role": role, "model_version": version,
             "latency_ms": latency, "prediction": 1, "label": None, **extra}
            for i in range(n)
        ]  # fmt: skip

    @hookimpl
    def read_predictions(self, project: Any, model: str, since: str | None) -> Any:
        import pandas as pd

        return pd.DataFrame(self.rows)


@pytest.fixture
def judged(tmp_path: Path) -> Iterator[tuple[Any, _Log]]:
    from opsloop.plugins import make_manager
    from opsloop.project import Project

    (tmp_path / "opsloop.toml").write_text(
        '[project]\nname = "j"\n' + rk.policy(max_latency_ratio=2, max_quality_drop=0.1),
        encoding="utf-8",
    )
    log = _Log()
    manager = make_manager()
    manager.register(log, name="log")
    project = Project.open(tmp_path, plugins=manager, environ={})
    yield project, log
    project.close()


def test_canary_verdicts_from_the_prediction_log(judged: tuple[Any, _Log]) -> None:
    from opsloop.retrain import judge_canary, policy_for

    project, log = judged
    policy = policy_for(project, MODEL)

    def judge(final: bool = False) -> Any:
        return judge_canary(project, policy, MODEL, "1", "2", "2026-01-01T00:00:00+00:00",
                            final=final)  # fmt: skip

    log.add("champion", "1", 30, 1.0)
    log.add("challenger", "2", 10, 1.0)
    verdict = judge()
    assert verdict.ok is None and verdict.reason == "10 of 20 requests"
    verdict = judge(final=True)
    assert verdict.ok is False and verdict.reason.startswith("inconclusive: the challenger")

    log.add("challenger", "2", 10, 1.5)  # 20 requests, p95 1.5 ms vs 1.0: within 2x
    verdict = judge()
    assert verdict.ok is True and verdict.figures["latency_ratio"] == 1.5
    assert verdict.figures["quality"].startswith("not judged")

    log.add("challenger", "2", 20, 5.0)  # now p95 5 ms: 5x the champion's
    verdict = judge()
    assert verdict.ok is False and "p95 latency 5.00 ms is 5.0x" in verdict.reason

    log.add("fallback", "1", 1, 1.0)  # one failure: the budget of 0.2 is spent
    verdict = judge()
    assert verdict.ok is False and verdict.figures["failed_requests"] == 1
    assert verdict.reason.startswith("1 of 41 challenger requests failed")


def test_canary_quality_from_feedback_labels(judged: tuple[Any, _Log]) -> None:
    from opsloop.retrain import judge_canary, policy_for

    project, log = judged
    policy = policy_for(project, MODEL)
    log.add("champion", "1", 60, 1.0, label=1)  # always right
    log.add("challenger", "2", 40, 1.0, label=1)
    log.add("challenger", "2", 20, 1.0, label=0)  # wrong on a third
    verdict = judge_canary(project, policy, MODEL, "1", "2", "2026-01-01T00:00:00+00:00")
    assert verdict.ok is False and "accuracy 0.667 from feedback" in verdict.reason
    assert verdict.figures["champion_accuracy"] == 1.0

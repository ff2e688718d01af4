"""``opsloop ingest`` run, list and loads, through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dlt_plugin_testdata import write_csv

CONFIG = """
[plugin.dlt]
sources = [
  {name = "sales", path = "landing/sales"},
  {name = "stock", path = "landing/stock", write_disposition = "replace"},
]
"""


def opsloop(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSLOOP_PLUGINS": "dlt", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", "from opsloop.cli import main; main()", "-p", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_ingest_run_list_and_loads(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "opsloop.toml").write_text(CONFIG)
    write_csv(root / "landing" / "sales" / "2026-11-01.csv", ["id", "qty"], [[1, 2], [2, 3]])
    write_csv(root / "landing" / "sales" / "2026-11-02.csv", ["id", "qty"], [[3, 4]])
    write_csv(root / "landing" / "stock" / "s.csv", ["sku", "n"], [["a", 1]])

    listed = opsloop(root, "ingest", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {s["name"]: s for s in json.loads(listed.stdout)}
    assert by_name["sales"]["options"]["path"] == str(root / "landing" / "sales")
    assert by_name["stock"]["write_disposition"] == "replace"
    table = opsloop(root, "ingest", "list")
    assert "sales" in table.stdout and "landing_files" in table.stdout

    first = opsloop(root, "ingest", "run")
    assert first.returncode == 0, first.stderr
    assert "sales: loaded raw.sales 3 rows" in first.stdout
    assert "stock: loaded raw.stock 1 rows" in first.stdout

    second = opsloop(root, "ingest", "run", "sales")
    assert second.returncode == 0, second.stderr
    assert "sales: nothing new (empty load)" in second.stdout and "stock" not in second.stdout

    loads = opsloop(root, "ingest", "loads", "--json", "--source", "sales")
    records = json.loads(loads.stdout)
    assert [r["status"] for r in records] == ["loaded", "empty"]
    assert len(records[0]["load_ids"]) == 1 and records[0]["tables"] == {"sales": 3}
    shown = opsloop(root, "ingest", "loads")
    assert records[0]["load_ids"][0] in shown.stdout and "stock" in shown.stdout

    audit = [
        json.loads(line) for line in (root / ".opsloop" / "audit.jsonl").read_text().splitlines()
    ]
    assert [e["action"] for e in audit].count("ingest.load") == 3


def test_ingest_run_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "opsloop.toml").write_text(CONFIG)
    bad = root / "landing" / "sales" / "bad.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text("id,qty\n1,2,3\n")
    write_csv(root / "landing" / "stock" / "s.csv", ["sku", "n"], [["a", 1]])

    unknown = opsloop(root, "ingest", "run", "salez")
    assert unknown.returncode == 2
    assert "no source named 'salez'; did you mean 'sales'?" in unknown.stderr

    failed = opsloop(root, "ingest", "run")
    assert failed.returncode == 2
    assert f"sales: failed: source 'sales': cannot read {bad}" in " ".join(failed.stderr.split())
    assert "1 of 2 source(s) failed: sales" in failed.stderr
    assert "stock: loaded raw.stock 1 rows" in failed.stdout  # the other source still ran
    assert "Traceback" not in failed.stderr

    (root / "opsloop.toml").write_text("[plugin.dlt]\nsources = [{name = 'x'}]\n")
    config = opsloop(root, "ingest", "list")
    assert config.returncode == 2 and "needs 'path'" in config.stderr


def test_no_sources_message_names_the_table(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text("")
    listed = opsloop(tmp_path, "ingest", "list")
    assert listed.returncode == 0
    assert listed.stdout == "no sources; declare them under [plugin.dlt] sources in opsloop.toml\n"
    ran = opsloop(tmp_path, "ingest", "run")
    assert ran.returncode == 2 and "declare them under [plugin.dlt] sources" in ran.stderr


def test_quarantine_list_show_and_release(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    config = (
        '[plugin.dlt]\nsources = [{name = "pay", path = "landing", contract = "pay"}]\n'
        "[plugin.dlt.contracts.pay.columns]\n"
        'id = "bigint"\namount = { type = "double", min = 0 }\n'
    )
    (root / "opsloop.toml").write_text(config)
    write_csv(root / "landing" / "d1.csv", ["id", "amount"], [[1, 5.0], [2, -1.0]])
    ran = opsloop(root, "ingest", "run")
    assert ran.returncode == 0, ran.stderr
    assert "raw.pay 1 rows, raw.pay_quarantine 1 rows" in ran.stdout

    listed = json.loads(opsloop(root, "ingest", "quarantine", "list", "--json").stdout)
    assert listed == [{"source": "pay", "contract": "pay", "rows": 1, "rules": {"amount.min": 1}}]
    shown = json.loads(opsloop(root, "ingest", "quarantine", "show", "pay", "--json").stdout)
    assert shown[0]["line"] == 3 and shown[0]["row"] == {"id": 2, "amount": -1.0}
    assert "amount.min" in opsloop(root, "ingest", "quarantine", "show", "pay").stdout

    still = opsloop(root, "ingest", "quarantine", "release", "pay")
    assert still.returncode == 0 and "released 0 row(s); 1 still break" in still.stdout
    (root / "opsloop.toml").write_text(config.replace(", min = 0", ""))  # the fix
    released = opsloop(root, "ingest", "quarantine", "release", "pay")
    assert released.returncode == 0 and "released 1 row(s)" in released.stdout
    assert (
        json.loads(opsloop(root, "ingest", "quarantine", "list", "--json").stdout)[0]["rows"] == 0
    )
    unknown = opsloop(root, "ingest", "quarantine", "release", "pay", "--id", "nope")
    assert unknown.returncode != 0 and len(unknown.stderr.strip().splitlines()) == 1

"""SIGKILL a real load during extract, normalize and load; the next run has every row once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from dlt_plugin_testdata import write_csv

#: The child: one load of the project, pausing (to be killed) at ``OPSLOOP_TEST_PAUSE``.
CHILD = r"""
import os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from conftest import open_project
from opsloop import ingest

pause, marker = os.environ.get("PAUSE"), Path(sys.argv[3])

def hold(step):
    marker.write_text(step)
    time.sleep(600)

if pause == "extract":
    import opsloop_dlt.landing as landing
    original = landing.read_file
    def read_file(*args, **kwargs):
        for n, item in enumerate(original(*args, **kwargs)):
            yield item
            if n == 1 and "d2" in str(args[0].path):
                hold("extract")
    landing.read_file = read_file
elif pause == "normalize":
    from dlt.normalize import Normalize
    original_run = Normalize.run
    def run(self, *args, **kwargs):
        result = original_run(self, *args, **kwargs)
        hold("normalize")  # files normalized, nothing loaded
        return result
    Normalize.run = run
elif pause == "load":
    from dlt.destinations.job_client_impl import SqlJobClientBase
    def complete_load(self, load_id):
        hold("load")  # the rows are in the tables, the load is not complete
    SqlJobClientBase.complete_load = complete_load

project = open_project(Path(sys.argv[1]), Path(sys.argv[1], "opsloop.toml").read_text())
record = ingest.run_load(project, ingest.get_source(project, "events"))
print(record.rows)
"""


def load(root: Path, tests: Path, pause: str | None) -> subprocess.CompletedProcess[str] | None:
    marker = root / f"paused-{pause}"
    env = {**os.environ, "PAUSE": pause or ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(tests), str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if pause is None:
        out, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the load ended before '{pause}': {proc.stderr.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the load never reached '{pause}'")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    marker.unlink()
    return None


@pytest.mark.parametrize("pause", ["extract", "normalize", "load"])
def test_sigkill_then_rerun_loads_every_row_exactly_once(tmp_path: Path, pause: str) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "opsloop.toml").write_text(
        "[plugin.dlt]\ncsv_chunk_rows = 500\n"
        "sources = [{name = 'events', path = 'landing', contract = 'ev'}]\n"
        "[plugin.dlt.contracts.ev]\nunique = ['id']\n"
        "[plugin.dlt.contracts.ev.columns]\nid = 'bigint'\nv = { type = 'double', min = 0 }\n"
    )
    write_csv(root / "landing" / "d1.csv", ["id", "v"], [[i, i / 2] for i in range(1500)])
    tests = Path(__file__).parent
    first = load(root, tests, None)
    assert first is not None and first.returncode == 0, first.stderr
    # a second day, with one row that breaks the contract
    rows = [[i, i / 2] for i in range(1500, 3000)] + [[3000, -1.0]]
    write_csv(root / "landing" / "d2.csv", ["id", "v"], rows)

    assert load(root, tests, pause) is None  # killed
    rerun = load(root, tests, None)
    assert rerun is not None and rerun.returncode == 0, rerun.stderr
    again = load(root, tests, None)
    assert again is not None and again.returncode == 0, again.stderr

    with duckdb.connect(str(root / ".opsloop" / "warehouse.duckdb"), read_only=True) as con:
        count, distinct = con.execute(
            "SELECT count(*), count(DISTINCT id) FROM raw.events"
        ).fetchone()  # type: ignore[misc]
        quarantined = con.execute("SELECT count(*) FROM raw.events_quarantine").fetchone()
    assert (count, distinct) == (3000, 3000)
    assert quarantined == (1,)

"""`opsloop batch score` through the real CLI with [plugin.dask]: a LocalCluster per run,
progress and an audited run; a bad setting or an unreachable scheduler is one line, exit 2.
Neither `opsloop --help` nor importing the plugin's entry point imports Dask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dask_testkit import TINY, tiny_frame

OPSLOOP = [str(Path(sys.executable).with_name("opsloop"))]


def opsloop(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "OPSLOOP_PLUGINS": "mlflow,fastapi,dask"}
    env.pop("OPSLOOP_PROJECT", None)
    return subprocess.run(
        [*OPSLOOP, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_batch_score_runs_on_a_local_cluster_and_is_audited(
    make_project: Any, tmp_path: Path
) -> None:
    project = make_project("\n[plugin.dask]\nenabled = true\nn_workers = 2\n")
    root = project.root
    frame = tiny_frame(30_000)
    frame.to_parquet(root / "in.parquet", row_group_size=5_000, index=False)
    done = opsloop(
        root, "batch", "score", TINY, "-i", "in.parquet", "-o", "out", "--chunk-size", "10000"
    )  # fmt: skip  (relative paths, as people type them)
    assert done.returncode == 0, done.stderr
    assert "scored 30000 rows into 3 parts" in done.stdout and "on dask" in done.stdout
    assert "30000/30000" in done.stdout  # the progress bar's last state
    assert "[progress" not in done.stdout  # its label is text, not markup the console shows
    out = pd.concat([pd.read_parquet(p) for p in sorted((root / "out").glob("part-*"))])
    assert out["row_id"].tolist() == list(range(30_000)) and "prediction" in out.columns
    project.close()
    from opsloop.project import Project

    reopened = Project.open(root)
    try:
        entry = [e for e in reopened.audit.entries() if e["action"] == "serve.batch"][-1]
    finally:
        reopened.close()
    assert entry["after"]["rows"] == 30_000 and entry["detail"]["engine"] == "dask"
    assert entry["detail"]["written"] == 3 and entry["detail"]["skipped"] == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('address = "my-scheduler:8786"', "plugin.dask.address"),
        ('enabled = true\nmemory_limit = "lots"', "plugin.dask.memory_limit"),
        ('address = "tcp://127.0.0.1:9"\nconnect_timeout_seconds = 1', "cannot reach the Dask"),
    ],
)
def test_a_bad_setting_or_an_unreachable_scheduler_is_one_line_exit_2(
    make_project: Any, tmp_path: Path, config: str, message: str
) -> None:
    project = make_project(f"\n[plugin.dask]\n{config}\n")
    tiny_frame(100).to_parquet(tmp_path / "in.parquet", index=False)
    done = opsloop(project.root, "batch", "score", TINY, "-i", str(tmp_path / "in.parquet"),
                   "-o", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_neither_the_help_nor_the_entry_point_imports_dask(tmp_path: Path) -> None:
    env = {**os.environ, "OPSLOOP_PLUGINS": "dask,fastapi"}
    code = (
        "import sys, opsloop_dask.plugin as p; p.describe_plugin(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    for args in (["--help"], ["plugins"]):
        helped = subprocess.run(
            [sys.executable, "-X", "importtime", *OPSLOOP, *args],
            capture_output=True, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        assert helped.returncode == 0, helped.stderr[-2000:]
        if args == ["plugins"]:
            assert "dask" in helped.stdout  # listed, described, and still not imported
        imported = [ln.rsplit("|", 1)[-1].strip() for ln in helped.stderr.splitlines()]
        assert len(imported) > 100  # importtime did report
        assert not [m for m in imported if m.split(".")[0] in ("dask", "distributed")], args


def test_the_local_cluster_gets_the_configured_malloc_settings() -> None:
    from opsloop_dask.engine import DaskEngine
    from opsloop_dask.settings import Settings

    def malloc() -> tuple[str | None, str | None]:
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("MALLOC_MMAP_THRESHOLD_")

    settings = Settings(enabled=True, malloc_trim_threshold=131072, malloc_mmap_threshold=2**25)
    with DaskEngine(settings).client() as client:
        seen = client.run(malloc)
        threads = client.nthreads()
    assert list(seen.values()) == [("131072", str(2**25))] * 2 and sorted(threads.values()) == [
        1,
        1,
    ]
    assert (Settings().malloc_trim_threshold, Settings().malloc_mmap_threshold) == (2**26, 2**24)


def test_doctor_says_where_dask_work_would_run(make_project: Any) -> None:
    from opsloop_dask.checks import checks

    def finding(config: str) -> tuple[bool, str]:
        project = make_project(f"\n[plugin.dask]\n{config}\n")
        (found,) = [c for c in checks(project) if c.plugin == "dask"]
        return found.ok, found.detail

    assert finding("") == (True, "off: batch scoring and profiles run in-process")
    ok, detail = finding('enabled = true\nn_workers = 3\nmemory_limit = "2GiB"')
    assert ok and detail == "a LocalCluster per run: 3 workers x 1 threads, memory 2GiB each"
    ok, detail = finding('address = "tcp://127.0.0.1:9"\nconnect_timeout_seconds = 1')
    assert not ok and detail.startswith("tcp://127.0.0.1:9: ")
    ok, detail = finding('address = "nope"')
    assert not ok and "plugin.dask.address" in detail

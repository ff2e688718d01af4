"""The monitor loop end to end with real components: MLflow registry, uvicorn server on
loopback, the Parquet prediction and feedback logs, and the `opsloop monitor` CLI in its
own processes.

Register (the training data is profiled and stored) -> serve ordinary traffic with true
labels -> `monitor check`: nothing -> serve shifted traffic with wrong labels -> `monitor
check` and `monitor watch --once`: drift and degraded quality, as signals, alerts and
incidents -> `monitor profile --from FILE` -> a changed profile file is refused.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from opsloop import registry, serve
from opsloop.errors import IntegrityError
from opsloop.interfaces import Dataset
from opsloop.profile_store import profile_records
from opsloop.project import Project
from opsloop.records import Alert, Incident, Signal
from opsloop.watch import check_model

pytestmark = pytest.mark.slow

OPSLOOP = Path(sys.executable).parent / "opsloop"
MODEL = "bc"

TABLES_PLUGIN = """
import hashlib

import pandas as pd

from opsloop import hookimpl
from opsloop.interfaces import Dataset, PluginInfo


@hookimpl
def describe_plugin():
    return PluginInfo(name="tables", stage="ingest", summary="CSV tables for the e2e test")


@hookimpl(tryfirst=True)
def read_dataset(project, table, dataset):
    path = project.root / "tables" / f"{dataset}.{table}.csv"
    if not path.is_file():
        return None
    return Dataset(name=table, frame=pd.read_csv(path), load_ids=["csv-1"],
                   content_hash=hashlib.sha256(path.read_bytes()).hexdigest())
"""

CONFIG = """
[project]
name = "monitor-e2e"

[plugins]
paths = ["plugins"]

[monitor]
min_labels = 50

[plugin.fastapi]
log_flush_seconds = 0.05
log_rotate_seconds = 0.2
"""


def data() -> pd.DataFrame:
    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    return pd.read_csv(io.StringIO(text)).sample(frac=1, random_state=7).reset_index(drop=True)


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPSLOOP), "-p", str(root), "monitor", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": f"{OPSLOOP.parent}:/usr/bin:/bin", "HOME": str(root), "COLUMNS": "200",
             "OPSLOOP_ACTOR": "e2e",
             # the audit key lives in the user's opsloop home: the same one as this process's
             "OPSLOOP_CONFIG_HOME": os.environ["OPSLOOP_CONFIG_HOME"]},
        cwd=root,
    )  # fmt: skip


def send(url: str, rows: pd.DataFrame, labels: Any) -> None:
    """Score ``rows`` 20 at a time, then send a label for every scored row."""
    features = [c for c in rows.columns if c != "target"]
    feedback = []
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(rows), 20):
            chunk = rows.iloc[start : start + 20]
            body = {"records": chunk[features].to_dict("records")}
            answer = client.post(f"{url}/v1/models/{MODEL}/predict", json=body)
            assert answer.status_code == 200, answer.text
            request_id = answer.json()["request_id"]
            feedback += [
                {"request_id": request_id, "row": i, "label": int(labels[start + i])}
                for i in range(len(chunk))
            ]
        sent = client.post(f"{url}/v1/feedback", json={"items": feedback})
        assert sent.status_code == 202 and sent.json()["accepted"] == len(rows)


def logged(project: Project, rows: int) -> None:
    """Wait until the log files holding ``rows`` rows (with labels) are readable."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = project.hook.read_predictions(project=project, model=MODEL, since=None)
        if frame is not None and len(frame) >= rows and frame["label"].notna().sum() >= rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"the log did not reach {rows} labelled rows")


def test_monitor_loop(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "plugins").mkdir(parents=True)
    (root / "tables").mkdir()
    (root / "opsloop.toml").write_text(CONFIG)
    (root / "plugins" / "tables.py").write_text(TABLES_PLUGIN)
    frame = data()
    train, holdout = frame.iloc[:400], frame.iloc[400:].reset_index(drop=True)
    train.to_csv(root / "tables" / "raw.bc_train.csv", index=False)
    project = Project.open(root, environ={})
    try:
        trained = project.hook.train_model(
            project=project, data=Dataset(name="bc_train", frame=train), target="target", params={}
        )
        ref = registry.register_model(
            project, MODEL, trained, {"dataset": "raw.bc_train", "load_ids": ["csv-1"]}
        )
        registry.set_alias(project, MODEL, "champion", ref.version)
        (record,) = profile_records(project, MODEL, ref.version)
        assert record.rows == 400 and record.prediction and len(record.columns) == 30

        handle = serve.start_server(project, ref, "127.0.0.1", 0)
        try:
            send(handle.url, holdout, holdout["target"].to_numpy())
            logged(project, len(holdout))
            quiet = cli(root, "check", MODEL)
            assert quiet.returncode == 0, quiet.stdout + quiet.stderr
            assert "no drift: 0 of 30 features drifted" in quiet.stdout
            assert f"model quality ({len(holdout)} labelled rows, vs registry)" in quiet.stdout

            shifted = holdout.copy()
            features = [c for c in holdout.columns if c != "target"]
            shifted[features] = shifted[features] * 1.6
            send(handle.url, shifted, 1 - holdout["target"].to_numpy())
            logged(project, 2 * len(holdout))
        finally:
            handle.stop()

        found = cli(root, "check", MODEL, "--rows", str(len(holdout)), "--json")
        assert found.returncode == 1, found.stdout + found.stderr
        body = json.loads(found.stdout)
        assert body["drift"]["drifted"] and len(body["drift"]["features"]) == 30
        assert body["drift"]["prediction"]["drifted"]
        assert any(c["metric"] == "accuracy" and c["degraded"] for c in body["quality"]["changes"])
        assert {s["type"] for s in body["signals"]} == {"drift", "model_quality"}

        watched = cli(root, "watch", "--once")
        assert watched.returncode == 1, watched.stdout + watched.stderr
        assert f"{MODEL} v{ref.version} (last 1h, {2 * len(holdout)} rows): DRIFT" in watched.stdout

        rebuilt = cli(root, "profile", MODEL, "--from", str(root / "tables" / "raw.bc_train.csv"))
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "400 rows, 30 features (30 numeric, 0 categorical), prediction" in rebuilt.stdout
        newest = profile_records(project, MODEL, ref.version)[-1]
        assert newest.source["kind"] == "file" and f"sha256: {newest.sha256}" in rebuilt.stdout

        path = project.home / newest.path  # a changed profile is refused (checked in-process:
        path.write_text(path.read_text().replace('"rows": 400', '"rows": 401'))  # each CLI
        with pytest.raises(IntegrityError, match="was changed"):  # run imports MLflow)
            check_model(project, MODEL)

        signals = [s for s in project.records.list(Signal) if s.subject == MODEL]
        assert {s.type for s in signals} == {"drift", "model_quality"}
        rules = {a.rule for a in project.records.list(Alert)}
        assert {"model-drift", "model-quality"} <= rules
        assert {i.subject for i in project.records.list(Incident)} == {MODEL}
        assert project.audit.verify().ok
        actions = [e["action"] for e in project.audit.entries()]
        assert actions.count("monitor.profile") == 2
    finally:
        project.close()

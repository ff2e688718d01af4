"""The registry plugin against a real `mlflow server` (HTTP tracking + proxied artifacts)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opsloop_mlflow._vendor import offline_environ
from opsloop_mlflow.store import MlflowModelStore

from opsloop.interfaces import Dataset, TrainedModel
from opsloop.project import Project


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path
) -> Iterator[dict[str, Any]]:
    """`mlflow server` on a free loopback port, serving artifacts; shared by this module's
    tests (each uses its own experiment and model names) and stopped at teardown."""
    folder = tmp_path_factory.mktemp("server")
    backend = folder / "backend.db"
    shutil.copy(mlflow_db_template, backend)  # migrated already: faster start-up
    artifacts = folder / "artifacts"
    port = _free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    env = offline_environ()
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(mlflow_cli),
            "server",
            "--backend-store-uri",
            f"sqlite:///{backend}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {proc.returncode}: "
                    + (folder / "server.log").read_text(errors="replace")[-2000:]
                )
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer /health within 120 s")
            time.sleep(0.5)
        yield {"url": url, "artifacts": artifacts}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


@pytest.mark.slow
def test_register_resolve_and_load_through_a_tracking_server(
    mlflow_server: dict[str, Any],
    project_factory: Callable[..., Project],
    trained: TrainedModel,
    breast_cancer: Dataset,
    lineage: dict[str, Any],
) -> None:
    project = project_factory(
        config=f'[project]\nname = "bc-remote"\n\n[plugin.mlflow]\n'
        f'tracking_uri = "{mlflow_server["url"]}"\n'
    )
    store = project.hook.model_store(project=project)
    assert isinstance(store, MlflowModelStore)

    first = store.register("bc", trained, lineage=lineage)
    second = store.register("bc", trained, lineage=lineage)
    assert (first.version, second.version) == ("1", "2")
    assert first.load_ids == breast_cancer.load_ids
    assert store.set_alias("bc", "champion", "2") is None

    champion = store.resolve("bc", "@champion")
    assert (champion.version, champion.aliases, champion.uri) == ("2", ["champion"], "models:/bc/2")
    assert champion.signature["outputs"] == [{"name": "prediction", "type": "long"}]

    experiment = store.client.get_experiment_by_name("bc-remote")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    # The artifacts went through the server's proxy into its destination folder.
    uploaded = list(mlflow_server["artifacts"].rglob("model.skops"))
    assert len(uploaded) == 2

    loaded = store.load(champion)
    features = breast_cancer.frame[trained.features]
    assert np.array_equal(loaded.predict(features), trained.model.predict(features))

    # A fresh store (another replica) downloads once into its cache, then loads from it.
    replica = MlflowModelStore(store.config, root=project.root)
    shutil.rmtree(store.config.cache_dir)
    again = replica.load(replica.resolve("bc", "champion"))
    assert np.array_equal(again.predict(features), loaded.predict(features))
    assert len(list(store.config.cache_dir.rglob("model.skops"))) == 1
    # Nothing went to the embedded default artifact folder.
    assert not (project.home / "mlartifacts").exists()


#: A project-local plugin serving <root>/tables/<dataset>.<table>.csv through read_dataset.
TABLES_PLUGIN = """
import hashlib
import pandas as pd
from opsloop import hookimpl
from opsloop.interfaces import Dataset, PluginInfo

@hookimpl
def describe_plugin():
    return PluginInfo(name="tables", stage="ingest")

@hookimpl(tryfirst=True)
def read_dataset(project, table, dataset):
    path = project.root / "tables" / f"{dataset}.{table}.csv"
    if not path.is_file():
        return None
    return Dataset(name=table, frame=pd.read_csv(path), load_ids=["csv-" + path.stem],
                   content_hash=hashlib.sha256(path.read_bytes()).hexdigest())
"""


@pytest.mark.slow
def test_model_commands_against_a_tracking_server(
    mlflow_server: dict[str, Any],
    tmp_path: Path,
    trained: TrainedModel,
    breast_cancer: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every `opsloop model` command, through the real CLI, on `mlflow server` (SQLite)."""
    import skops.io

    from opsloop.cli import context, main

    root = tmp_path / "remote-cli"
    (root / "localplugins").mkdir(parents=True)
    (root / "localplugins" / "tables.py").write_text(TABLES_PLUGIN)
    (root / "tables").mkdir()
    frame = breast_cancer.frame
    frame.iloc[:400].to_csv(root / "tables" / "raw.train.csv", index=False)
    frame.iloc[400:].to_csv(root / "tables" / "raw.holdout.csv", index=False)
    (root / "opsloop.toml").write_text(
        '[project]\nname = "remote-cli"\n\n[audit]\nactor = "carol"\n\n'
        '[plugins]\npaths = ["localplugins"]\n\n'
        f'[plugin.mlflow]\ntracking_uri = "{mlflow_server["url"]}"\n\n'
        '[registry.gate]\nholdout = "raw.holdout"\nthresholds = { roc_auc = 0.9 }\n'
        "max_regression = { roc_auc = 0.01 }\n"
    )
    skops.io.dump(trained.model, root / "good.skops")
    from sklearn.dummy import DummyClassifier

    bad = DummyClassifier(strategy="prior").fit(frame[trained.features], frame["target"])
    skops.io.dump(bad, root / "bad.skops")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("OPSLOOP_PLUGINS", raising=False)

    def run(*args: str, code: int = 0) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(["--project", str(root), "model", *args])
        out, err = capsys.readouterr()
        assert info.value.code == code, (args, out, err)
        return out if code == 0 or out else err

    data = ("--training-data", "raw.train", "--target", "target")
    try:
        assert "version 1" in run("register", "churn", str(root / "good.skops"), *data)
        assert "version 2" in run("register", "churn", str(root / "bad.skops"), *data)
        assert "version 3" in run("register", "churn", str(root / "good.skops"), *data)
        assert "churn@champion -> version 1 (new alias)" in run("promote", "churn", "1")
        refused = run("promote", "churn", "2", code=1)
        assert len(refused.splitlines()) == 1 and "roc_auc 0.5000 < minimum 0.9" in refused
        assert "'regression roc_auc' (roc_auc 0.5000 vs @champion v1 0.99" in refused
        assert "from version 1" in run("promote", "churn", "3")
        assert "rolled back to version 1 (was 3)" in run("rollback", "churn")
        assert "no earlier version" in run("rollback", "churn", code=2)
        run("meta", "churn", "--owner", "carol", "--intended-use", "churn triage")
        run("evidence", "churn", "1", "--kind", "load_test", "--passed")
        run("evidence", "churn", "1", "--kind", "security_scan", "--passed")
        ready = json.loads(run("ready", "churn", "1", "--json", code=1))
        assert [i["item"] for i in ready["items"] if not i["ok"]] == ["rollback target exists"]
        card = json.loads(run("card", "churn", "--json"))
        assert card["model"]["version"] == "1" and card["owner"] == "carol"
        assert card["evaluation"]["holdout"] == "raw.holdout"
        assert card["integrity"]["intact"] and len(card["integrity"]["files"]) >= 5
        history = json.loads(run("history", "churn", "--json"))
        assert [v["registered_by"] for v in history["versions"]] == ["carol"] * 3
        assert history["alias_history"] == {"champion": ["1"]}
        shown = json.loads(run("show", "churn", "@champion", "--json"))
        assert shown["artifacts"]["location"].startswith("mlflow-artifacts:")
        assert shown["training_data"]["dataset"] == "raw.train"
        assert "every artifact file matches" in run("verify", "churn", "1")

        # Tampering on the server side is caught once the replica's cache is gone.
        location = json.loads(run("show", "churn", "3", "--json"))["artifacts"]["location"]
        model_id = location.split("/models/", 1)[1].split("/", 1)[0]
        (served,) = [
            p for p in mlflow_server["artifacts"].rglob("model.skops") if model_id in p.parts
        ]
        served.write_bytes(b"swapped on the server")
        shutil.rmtree(root / ".opsloop" / "mlflow-cache")
        bad_line = run("verify", "churn", "3", code=1)
        assert bad_line.strip() == "opsloop: churn v3: artifact file 'model.skops' changed"
        assert "artifact file 'model.skops' changed" in run("promote", "churn", "3", code=1)
    finally:
        project = context._state.get("project")
        if project is not None:
            project.close()  # type: ignore[attr-defined]

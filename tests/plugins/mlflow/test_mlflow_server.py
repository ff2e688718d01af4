"""The registry plugin against a real `mlflow server` (HTTP tracking + proxied artifacts)."""

from __future__ import annotations

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


@pytest.fixture
def mlflow_server(tmp_path: Path, mlflow_db_template: Path) -> Iterator[dict[str, Any]]:
    """`mlflow server` on a free loopback port, serving artifacts; stopped at teardown."""
    folder = tmp_path / "server"
    folder.mkdir()
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

"""Shared set-up for the registry tests (no tests here): a real MLflow SQLite store, two
models trained once per session, and a holdout table served through the read_dataset hook.

Test modules import the fixtures they use from here. MLflow is slow to import and to
migrate a fresh database, so one migrated database is copied into each project.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import opsloop_mlflow.plugin as mlflow_plugin
import pandas as pd
import pytest

import opsloop
from opsloop import hookimpl
from opsloop.interfaces import Dataset, TrainedModel
from opsloop.plugins import make_manager
from opsloop.project import Project

DATA = Path(opsloop.__file__).parent / "data" / "breast_cancer.csv"
TRAIN_LOAD_IDS = ["1732690000.000001", "1732690100.000002"]
HOLDOUT_LOAD_IDS = ["1732690200.000003"]

GATE = """
[registry.gate]
holdout = "raw.bc_holdout"
target = "target"
thresholds = { roc_auc = 0.9, accuracy = 0.85 }
max_regression = { roc_auc = 0.01 }
"""

#: A project-local plugin (``[plugins] paths``) serving CSV files in <root>/tables as
#: ``dataset.table``: how the CLI tests give the gate a holdout without an ingest run.
LOCAL_TABLES_PLUGIN = """
import hashlib
from pathlib import Path

import pandas as pd

from opsloop import hookimpl
from opsloop.interfaces import Dataset, PluginInfo


@hookimpl
def describe_plugin():
    return PluginInfo(name="tables", stage="ingest", summary="CSV tables for tests")


@hookimpl(tryfirst=True)
def read_dataset(project, table, dataset):
    path = project.root / "tables" / f"{dataset}.{table}.csv"
    if not path.is_file():
        return None
    raw = path.read_bytes()
    return Dataset(name=table, frame=pd.read_csv(path), load_ids=["csv-" + path.stem],
                   content_hash=hashlib.sha256(raw).hexdigest())
"""


@functools.cache
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shipped data set split into a training part (400 rows) and a holdout (169)."""
    frame = pd.read_csv(DATA)
    return frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)


@functools.cache
def good_model() -> TrainedModel:
    from opsloop_mlflow.train import train

    return train(Dataset(name="bc_train", frame=frames()[0]), "target")


@functools.cache
def bad_model() -> TrainedModel:
    """Trained on shuffled labels: ROC AUC near 0.5 on the holdout."""
    from opsloop_mlflow.train import train

    shuffled = frames()[0].copy()
    shuffled["target"] = np.random.RandomState(0).permutation(shuffled["target"].to_numpy())
    return train(Dataset(name="bc_train", frame=shuffled), "target")


@functools.cache
def db_template() -> Path:
    """An MLflow SQLite database with every migration applied, made once per session."""
    from opsloop_mlflow._vendor import import_mlflow

    mlflow = import_mlflow()
    folder = Path(tempfile.mkdtemp(prefix="opsloop-registry-tests-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def lineage() -> dict[str, Any]:
    return {"dataset": "raw.bc_train", "load_ids": list(TRAIN_LOAD_IDS), "content_hash": "c0ffee"}


class Tables:
    """read_dataset for raw.bc_train and raw.bc_holdout (None for anything else)."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    @hookimpl
    def read_dataset(self, project: Any, table: str, dataset: str) -> Dataset | None:
        train, holdout = frames()
        found = {
            ("raw", "bc_train"): (train, TRAIN_LOAD_IDS),
            ("raw", "bc_holdout"): (holdout, HOLDOUT_LOAD_IDS),
        }.get((dataset, table))
        if found is None:
            return None
        self.reads.append(f"{dataset}.{table}")
        return Dataset(
            name=table, frame=found[0], load_ids=list(found[1]), content_hash="h-" + table
        )


def open_project(root: Path, config: str = "", *, tables: Tables | None = None) -> Project:
    """A project with built-ins + opsloop-mlflow + the Tables plugin, on a copy of the store."""
    root.mkdir(parents=True, exist_ok=True)
    # registrations here are about the registry: no reference profiles (test_monitor_stage)
    text = (
        '[project]\nname = "reg-test"\n\n[audit]\nactor = "alice"\n\n'
        "[monitor]\nprofile_on_register = false\n" + config
    )
    (root / "opsloop.toml").write_text(text, encoding="utf-8")
    home = root / ".opsloop"
    home.mkdir(exist_ok=True)
    shutil.copy(db_template(), home / "mlflow.db")
    manager = make_manager(mlflow_plugin)
    manager.register(tables or Tables())
    return Project.open(root, plugins=manager, environ={})


def artifact_folder(project: Project, name: str, version: str) -> Path:
    from opsloop.registry import get_store

    store: Any = get_store(project)
    location = store.client.get_model_version_download_uri(name, version)
    return Path(location.removeprefix("file://"))


@pytest.fixture(autouse=True)
def no_outbound_network(opsloop_no_network: list[object]) -> list[object]:
    """Registry tests run offline: a non-loopback connection fails the test."""
    return opsloop_no_network


@pytest.fixture
def project_factory(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """``factory(config="toml", name="p")`` -> an opened project under tmp_path."""
    made: list[Project] = []

    def factory(config: str = "", name: str = "p", tables: Tables | None = None) -> Project:
        project = open_project(tmp_path / name, config, tables=tables)
        made.append(project)
        return project

    yield factory
    for project in made:
        project.close()

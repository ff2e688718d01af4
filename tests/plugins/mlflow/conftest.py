"""Shared fixtures for the MLflow plugin tests: a real SQLite store per test, one trained model.

MLflow takes seconds to import and to create a fresh database (its migrations), so a
migrated database is made once per session and copied into each test's project home,
and the model is trained once per session.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import opsloop_mlflow.plugin as mlflow_plugin
import pandas as pd
import pytest

import opsloop
from opsloop.interfaces import Dataset, TrainedModel
from opsloop.plugins import make_manager
from opsloop.project import Project

DATA = Path(opsloop.__file__).parent / "data" / "breast_cancer.csv"
LOAD_IDS = ["1732690000.123456", "1732690100.654321"]


@pytest.fixture(autouse=True)
def no_outbound_network(opsloop_no_network: list[object]) -> list[object]:
    """Every MLflow test runs offline: a non-loopback connection fails it."""
    return opsloop_no_network


@pytest.fixture(scope="session")
def breast_cancer() -> Dataset:
    """The shipped dataset, as the ingest stage would hand it over (with lineage)."""
    frame = pd.read_csv(DATA)
    digest = "sha256:" + hashlib.sha256(DATA.read_bytes()).hexdigest()
    return Dataset(name="breast_cancer", frame=frame, load_ids=list(LOAD_IDS), content_hash=digest)


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite database with every migration applied, made once."""
    from opsloop_mlflow._vendor import import_mlflow

    mlflow = import_mlflow()  # telemetry off before MLflow is first imported
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def open_project(
    root: Path, template: Path, config: str = "", environ: dict[str, str] | None = None
) -> Project:
    """A project in ``root`` with built-ins + this plugin and a copy of the migrated store."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "opsloop.toml").write_text(config or '[project]\nname = "bc-test"\n', encoding="utf-8")
    home = root / ".opsloop"
    home.mkdir(exist_ok=True)
    shutil.copy(template, home / "mlflow.db")
    return Project.open(root, plugins=make_manager(mlflow_plugin), environ=environ or {})


@pytest.fixture
def project_factory(tmp_path: Path, mlflow_db_template: Path) -> Iterator[Callable[..., Project]]:
    """``factory(name="proj", config="toml")`` -> an opened project under tmp_path."""
    made: list[Project] = []

    def factory(
        name: str = "proj", config: str = "", environ: dict[str, str] | None = None
    ) -> Project:
        proj = open_project(tmp_path / name, mlflow_db_template, config, environ)
        made.append(proj)
        return proj

    yield factory
    for proj in made:
        proj.close()


@pytest.fixture
def project(project_factory: Callable[..., Project]) -> Project:
    return project_factory()


@pytest.fixture(scope="session")
def trained(breast_cancer: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The default model trained once, through the train_model hook."""
    root = tmp_path_factory.mktemp("train")
    (root / "opsloop.toml").write_text('[project]\nname = "train"\n', encoding="utf-8")
    proj = Project.open(root, plugins=make_manager(mlflow_plugin), environ={})
    try:
        model = proj.hook.train_model(project=proj, data=breast_cancer, target="target", params={})
    finally:
        proj.close()
    assert model is not None
    return model


@pytest.fixture
def lineage(breast_cancer: Dataset) -> dict[str, object]:
    return {
        "load_ids": list(breast_cancer.load_ids),
        "dataset": breast_cancer.name,
        "content_hash": breast_cancer.content_hash,
    }

"""Fixtures for the dask plugin tests: a project on a real MLflow registry, a real
two-worker LocalCluster (processes) shared by the session, and the breast-cancer data."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dask_testkit import MODEL, TARGET, TINY, breast_cancer, tiny_frame

from opsloop.plugins import make_manager
from opsloop.project import Project


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project folder whose MLflow registry holds the breast-cancer model (champion)."""
    import opsloop_mlflow.plugin
    from opsloop_mlflow._vendor import import_mlflow

    from opsloop import registry
    from opsloop.interfaces import Dataset

    import_mlflow()  # telemetry off before MLflow is first imported
    root = tmp_path_factory.mktemp("registry")
    (root / "opsloop.toml").write_text('[project]\nname = "dask-test"\n', encoding="utf-8")
    project = Project.open(root, plugins=make_manager(opsloop_mlflow.plugin), environ={})
    try:
        data = Dataset(name="breast_cancer", frame=breast_cancer(), load_ids=["t1"])
        trained = project.hook.train_model(project=project, data=data, target=TARGET, params={})
        ref = registry.register_model(project, MODEL, trained, {"load_ids": ["t1"]})
        registry.set_alias(project, MODEL, "champion", ref.version)
        frame = tiny_frame(2_000).drop(columns="row_id")
        frame["y"] = (frame["a"] + frame["b"] > 0).astype(int)
        tiny = project.hook.train_model(
            project=project, data=Dataset(name="tiny", frame=frame, load_ids=["t2"]), target="y",
            params={},
        )  # fmt: skip
        ref = registry.register_model(project, TINY, tiny, {"load_ids": ["t2"]})
        registry.set_alias(project, TINY, "champion", ref.version)
    finally:
        project.close()
    return {"root": root, "model": trained.model}


@pytest.fixture
def make_project(registered: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    """``make_project(config)``: a copy of the registered project with ``config`` appended,
    opened with every installed plugin (as the CLI and the workers open it)."""
    opened: list[Project] = []

    def make(config: str = "") -> Project:
        root = tmp_path / f"project{len(opened)}"
        shutil.copytree(registered["root"], root)
        with (root / "opsloop.toml").open("a", encoding="utf-8") as fh:
            fh.write(config)
        project = Project.open(root)
        opened.append(project)
        return project

    yield make
    for project in opened:
        project.close()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """A real LocalCluster: two worker processes, one thread each, 1 GiB each."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="1GiB",
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
    ) as local:
        yield local

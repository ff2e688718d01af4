"""Fixtures for the fastapi plugin tests: projects with the plugin, a registry, a recorder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi_testkit import (
    FAST_LOG,
    MODEL,
    RecorderPlugin,
    mlflow_project,
    open_project,
    register_versions,
    store_of,
    trained_with_mlflow,
)

from opsloop.project import Project


@pytest.fixture
def project_factory(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    made: list[Project] = []

    def factory(
        *plugins: tuple[str, Any],
        config: str = FAST_LOG,
        registry: bool = True,
        environ: dict[str, str] | None = None,
    ) -> Project:
        project = open_project(tmp_path / f"p{len(made)}", *plugins, config=config,
                               registry=registry, environ=environ)  # fmt: skip
        made.append(project)
        return project

    yield factory
    for project in made:
        project.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One real uvicorn server on 127.0.0.1 (port 0) shared by a test module."""
    recorder = RecorderPlugin()
    project = open_project(tmp_path_factory.mktemp("live"), ("recorder", recorder), config=FAST_LOG)
    ref = store_of(project).resolve(MODEL, "champion")
    handle = project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=0)
    client = httpx.Client(base_url=handle.url, trust_env=False, timeout=30)
    try:
        yield {"project": project, "ref": ref, "handle": handle, "client": client,
               "recorder": recorder}  # fmt: skip
    finally:
        client.close()
        handle.stop()
        project.close()


# ---------------------------------------------------------------------- the real registry
@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A migrated MLflow database and a trained model, made once per session."""
    from opsloop_mlflow._vendor import import_mlflow

    mlflow = import_mlflow()  # telemetry off before MLflow is first imported
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return {"db": path, "trained": trained_with_mlflow(tmp_path_factory.mktemp("train"))}


@pytest.fixture(scope="module")
def mlflow_registry(
    tmp_path_factory: pytest.TempPathFactory, mlflow_template: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """A project on a real MLflow store: the model registered twice, champion -> 1."""
    root = tmp_path_factory.mktemp("registry")
    project = mlflow_project(root, mlflow_template)
    try:
        yield {"project": project, "refs": register_versions(project, mlflow_template, 2)}
    finally:
        project.close()

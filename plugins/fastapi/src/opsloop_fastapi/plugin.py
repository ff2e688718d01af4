"""The opsloop entry point of opsloop-fastapi: hook implementations only, nothing heavy.

FastAPI, uvicorn, pandas and prometheus_client are imported inside the hooks, so that
``opsloop --help`` and ``opsloop plugins`` stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    import pandas as pd
    import typer

    from opsloop.project import Project
    from opsloop.records import ModelVersionRef
    from opsloop_fastapi.server import UvicornHandle


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="fastapi",
        stage="serve",
        summary="online and batch scoring on FastAPI + uvicorn: MLflow-compatible "
        "/invocations, limits, canary, shadow, hot-swap, prediction log, metrics",
        config_model="opsloop_fastapi.settings:Settings",
        vendor_packages=("fastapi", "uvicorn", "prometheus-client"),
    )


@hookimpl
def start_server(project: Project, ref: ModelVersionRef, host: str, port: int) -> UvicornHandle:
    from opsloop_fastapi.server import start_server as start

    return start(project, ref, host, port)


@hookimpl
def read_predictions(project: Project, model: str, since: str | None) -> pd.DataFrame | None:
    from opsloop_fastapi.predlog import model_dir, parse_since, read_log

    settings = project.settings("fastapi")
    if settings.log_format == "postgres":  # one table for every replica
        from opsloop_fastapi.pglog import read_log_postgres

        url = settings.postgres_url(project.environ) or ""  # validated: there is one
        return read_log_postgres(url, settings.log_postgres_table, model, parse_since(since))
    return read_log(
        model_dir(project.home / "predictions", model),
        model,
        parse_since(since),
        feedback_dir=model_dir(project.home / "feedback", model),
    )


@hookimpl
def score_batch(
    project: Project, ref: ModelVersionRef, input_path: Path, output_path: Path
) -> int | None:
    from opsloop_fastapi.batch import score_anywhere

    settings = project.settings("fastapi")
    result, _ = score_anywhere(
        project, ref, input_path, output_path, chunk_rows=settings.batch_chunk_rows
    )
    return result.rows


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop_fastapi.cli import register

    register(cli)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_fastapi.checks import checks

    return checks(project)

"""The app factory each ``opsloop serve --workers N`` process imports (uvicorn ``factory=True``).

uvicorn starts worker processes with ``spawn``; each imports this module, opens the project,
resolves ``NAME@ALIAS`` and loads the model itself (integrity-checked by the registry), so
workers share nothing but the listening socket. The parent passes what to serve in
environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

ENV_PROJECT = "OPSLOOP_SERVE_PROJECT"
ENV_MODEL = "OPSLOOP_SERVE_MODEL"
ENV_ALIAS = "OPSLOOP_SERVE_ALIAS"


def worker_environ(project_path: Path, name: str, alias: str) -> dict[str, str]:
    """The variables :func:`create_worker_app` reads."""
    return {ENV_PROJECT: str(project_path), ENV_MODEL: name, ENV_ALIAS: alias}


def create_worker_app() -> FastAPI:
    """Open the project named in the environment and build the app for NAME@ALIAS."""
    from opsloop.project import Project
    from opsloop_fastapi.server import model_store, open_app

    project = Project.open(os.environ[ENV_PROJECT])
    settings = project.settings("fastapi")
    store = model_store(project)
    name, alias = os.environ[ENV_MODEL], os.environ[ENV_ALIAS]
    ref = store.resolve(name, alias)
    return open_app(project, ref, alias=alias, settings=settings, store=store)

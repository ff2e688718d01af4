"""opsloop in Jupyter: magics, runbook widgets and a JupyterLab sidebar.

``%load_ext opsloop_jupyter`` registers ``%opsloop`` (any CLI command, tables as HTML) and
``%opsloop_project`` (open the project of the notebook's folder). Loading imports nothing
heavy: ipywidgets, papermill, matplotlib and every vendor SDK wait until they are used.
The widgets live in :mod:`opsloop_jupyter.widgets`, the server extension behind the
sidebar in :mod:`opsloop_jupyter.server`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "open_project", "record_run"]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext opsloop_jupyter``: register the magics (light imports only)."""
    from opsloop_jupyter.magics import OpsloopMagics

    ipython.register_magics(OpsloopMagics)


def open_project(path: Any = None) -> Any:
    """The project of ``path`` (default: the notebook's folder, searched up like the CLI).

    A folder that is no project is refused with the CLI's one-line NoProjectError.
    """
    from opsloop_jupyter.magics import open_project as _open

    return _open(path)


def record_run(
    runbook: str, result: dict[str, Any] | None = None, *, project: Any = None, **options: Any
) -> Any:
    """Record this notebook, run by hand, as a RunbookRun of ``runbook`` (the Jupyter user).

    :func:`opsloop.runbooks.record_hand_run` with the project of the notebook's folder and
    the Jupyter user (``$JUPYTERHUB_USER``, else the OS user) as actor; None under opsloop's
    papermill run, which records the run itself. Once per outcome in a kernel session.
    """
    import getpass
    import os

    from opsloop.runbooks import record_hand_run

    project = project if project is not None else open_project()
    actor = options.pop("actor", "") or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
    return record_hand_run(project, runbook, result, actor=actor, **options)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is (for `jupyter labextension develop`)."""
    return [{"src": "labextension", "dest": "opsloop-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter Server extension behind the sidebar (handlers in opsloop_jupyter.server)."""
    return [{"module": "opsloop_jupyter.server"}]

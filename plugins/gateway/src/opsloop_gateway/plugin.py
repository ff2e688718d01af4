"""The opsloop entry point of opsloop-gateway: hook implementations only, nothing heavy.

FastAPI, uvicorn and httpx are imported when the gateway starts, not when opsloop does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import CheckResult
    from opsloop.project import Project

NAME = "gateway"


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="guard",
        summary="OpenAI-compatible guarded gateway: scans prompts, retrieved context and "
        "completions (streamed and not); per-caller keys and budgets",
        config_model="opsloop_gateway.settings:Settings",
        vendor_packages=("fastapi", "uvicorn", "httpx"),
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop_gateway.cli import register

    register(cli)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_gateway.checks import checks

    return checks(project)

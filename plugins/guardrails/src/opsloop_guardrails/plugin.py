"""opsloop-guardrails entry module: hooks only; guardrails-ai is imported on the first scan."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import CheckResult, Scanner
    from opsloop.project import Project

NAME = "guardrails"


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="guard",
        summary="prompt-injection, PII and secret scanners run by guardrails-ai, offline",
        config_model="opsloop_guardrails.settings:Settings",
        vendor_packages=("guardrails",),
    )


@hookimpl
def register_scanners(project: Project) -> list[Scanner]:
    """The configured scanners (the core collects them once per opened project)."""
    from opsloop_guardrails.scanners import build_scanners

    return build_scanners(project.settings(NAME))


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_guardrails.checks import checks

    return checks(project)


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop_guardrails.cli import register

    register(cli)

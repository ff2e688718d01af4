"""Built-in plugin: the guard's SDK-free scanners and the ``opsloop guard`` commands.

Built in, not a vendor plugin, so a core-only install guards text: normalisation, the
rules, the shipped model, secrets and PII need only the core (and numpy). A plugin that
registers a scanner of the same name (opsloop-guardrails does) replaces the built-in one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import CheckResult, Scanner
    from opsloop.project import Project

NAME = "guard"


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="guard",
        summary="prompt-injection (rules + shipped model), secret and PII scanners, offline",
        config_model="opsloop.guard.settings:Settings",
    )


@hookimpl
def register_scanners(project: Project) -> list[Scanner]:
    """The configured scanners (the core collects them once per opened project)."""
    from opsloop.guard.scanners import build_scanners

    return build_scanners(project.settings(NAME))


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop.guard.checks import checks

    return checks(project)


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.guard.cli import register

    register(cli)

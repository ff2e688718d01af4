"""Built-in plugin: the guard's SDK-free scanners and the ``opsloop guard`` commands.

Built in, not a vendor plugin, so a core-only install guards text: normalisation, the
rules, the shipped model, secrets and PII need only the core (and numpy). A plugin that
registers a scanner of the same name (opsloop-guardrails does) replaces the built-in one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.guard.settings import Settings
    from opsloop.interfaces import CheckResult, Scanner
    from opsloop.project import Project

NAME = "guard"
_cache: dict[str, list[Any]] = {}
_cache_lock = threading.Lock()


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="guard",
        summary="prompt-injection (rules + shipped model), secret and PII scanners, offline",
        config_model="opsloop.guard.settings:Settings",
    )


def load_settings(project: Project) -> Settings:
    """``[plugin.guard]``, validated even when the plugin was registered by hand."""
    from pydantic import ValidationError

    from opsloop.config import format_validation_error
    from opsloop.errors import ConfigError
    from opsloop.guard.settings import Settings

    raw = project.settings(NAME)
    if isinstance(raw, Settings):
        return raw
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, project.config.source, prefix=f"plugin.{NAME}")
        ) from None


def scanners_for(settings: Settings) -> list[Scanner]:
    """The scanners for these settings, built once per settings value."""
    key = settings.model_dump_json()
    with _cache_lock:
        if key not in _cache:
            from opsloop.guard.scanners import build_scanners

            _cache[key] = build_scanners(settings)
        return list(_cache[key])


@hookimpl
def register_scanners(project: Project) -> list[Scanner]:
    return scanners_for(load_settings(project))


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop.guard.checks import run_checks

    return run_checks(project)


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.guard.cli import app

    cli.add_typer(app, name="guard")

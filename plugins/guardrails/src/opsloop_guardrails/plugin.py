"""opsloop-guardrails entry module: hooks only; guardrails-ai is imported on the first scan."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    from opsloop.interfaces import CheckResult, Scanner
    from opsloop.project import Project
    from opsloop_guardrails.settings import Settings

NAME = "guardrails"
_cache: dict[str, list[Any]] = {}
_cache_lock = threading.Lock()


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="guard",
        summary="prompt-injection, PII and secret scanners run by guardrails-ai, offline",
        config_model="opsloop_guardrails.settings:Settings",
        vendor_packages=("guardrails",),
    )


def load_settings(project: Project) -> Settings:
    """``[plugin.guardrails]``, validated even when the plugin was registered by hand."""
    from pydantic import ValidationError

    from opsloop.config import format_validation_error
    from opsloop.errors import ConfigError
    from opsloop_guardrails.settings import Settings

    raw = project.settings(NAME)
    if isinstance(raw, Settings):
        return raw
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, project.config.source, prefix=f"plugin.{NAME}")
        ) from None


@hookimpl
def register_scanners(project: Project) -> list[Scanner]:
    """The configured scanners; built once per settings (the guard calls this per text)."""
    settings = load_settings(project)
    key = settings.model_dump_json()
    with _cache_lock:
        if key not in _cache:
            from opsloop_guardrails.scanners import build_scanners

            _cache[key] = build_scanners(settings)
        return list(_cache[key])


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_guardrails.checks import run_checks

    return run_checks(project)

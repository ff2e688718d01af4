"""The CLI's shared state: which project to open, opened once per command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from opsloop.plugins import PluginManager
    from opsloop.project import Project

# Markup off: messages name config tables and keys in brackets (`[plugin.dlt] sources`,
# `[respond] kernel`) and carry user data; rich would take those for style tags and drop
# them. Style with rich.text.Text or `style=` instead.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)

_state: dict[str, object] = {
    "project_path": None,
    "project": None,
    "plugins": None,
    "config_error": None,
    "secrets": [],
}


def set_project_path(path: Path | None) -> None:
    _state["project_path"] = path
    _state["project"] = None


def set_plugins(plugins: PluginManager) -> None:
    """The manager built at start-up (it also supplied plugin commands); reused by projects."""
    _state["plugins"] = plugins


def set_config_error(error: Exception) -> None:
    """A config problem met while building the plugins; raised by the command that needs it."""
    _state["config_error"] = error


def keep_secrets(values: list[object]) -> None:
    """Scrub every form of ``values`` from what this command prints and writes, until it
    ends (:func:`drop_secrets`)."""
    from opsloop.redact import register_secrets

    _state["secrets"].append(register_secrets(values))  # type: ignore[attr-defined]


def drop_secrets() -> None:
    """The command ended: forget the secrets it kept."""
    from opsloop.redact import forget_secrets

    kept: list[Any] = _state["secrets"]  # type: ignore[assignment]
    while kept:
        forget_secrets(kept.pop())


def plugins() -> PluginManager:
    """The plugin manager built at start-up; its config problem, if any, raised now."""
    from opsloop.plugins import PluginManager

    if isinstance(_state["config_error"], Exception):
        raise _state["config_error"]
    if _state["plugins"] is None:
        _state["plugins"] = PluginManager.from_selection({}, Path.cwd())
    return _state["plugins"]  # type: ignore[return-value]


def open_project(*, detached_ok: bool = False) -> Project:
    """The project for this command (``--project`` or searched up from cwd), opened once.

    No project there: a one-line error, unless ``detached_ok`` (a command that only
    computes), which gets a detached project that writes nothing.
    """
    from opsloop.project import Project

    if _state["project"] is None:
        project = Project.open(
            _state["project_path"],  # type: ignore[arg-type]
            plugins=plugins(),
            detached_ok=detached_ok,
        )
        warn_failed_plugins(project.plugins)
        _state["project"] = project
    return _state["project"]  # type: ignore[return-value]


def print_json(value: object) -> None:
    """``--json`` output: one JSON document on stdout, never rich markup."""
    import json

    print(json.dumps(value, indent=2, sort_keys=True, default=str))


_warned: set[str] = set()


def warn_failed_plugins(plugins: PluginManager) -> None:
    """One line per broken plugin on stderr; the command goes on with the rest."""
    for entry in plugins.failures:
        if entry.name in _warned:
            continue
        _warned.add(entry.name)
        print(
            f"opsloop: warning: plugin '{entry.name}' is not loaded: {entry.error} "
            f"(see `opsloop plugins`; silence with OPSLOOP_DISABLE_PLUGINS={entry.name})",
            file=sys.stderr,
        )

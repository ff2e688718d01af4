"""Finding and reading opsloop.toml and OPSLOOP_* variables without pydantic, so CLI
start-up stays fast; :mod:`opsloop.config` validates what these functions read."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsloop.errors import ConfigError

CONFIG_FILE = "opsloop.toml"

#: The config sections ``OPSLOOP_<SECTION>__<KEY>`` may override.
ENV_SECTIONS = frozenset(
    ("project", "warehouse", "records", "audit", "plugins", "monitor", "respond", "registry")
)
#: ``[plugins]`` keys that take a comma-separated list from the environment.
_LIST_KEYS = frozenset({"enabled", "disabled", "paths", "order"})
#: Prefix of the variables that override a plugin's settings: OPSLOOP_PLUGIN__<NAME>__<KEY>.
PLUGIN_ENV_PREFIX = "OPSLOOP_PLUGIN__"


def find_config(start: Path) -> Path | None:
    """The nearest opsloop.toml, or pyproject.toml with [tool.opsloop], from ``start`` up."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            return candidate
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and b"[tool.opsloop" in pyproject.read_bytes():
            return pyproject
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("opsloop", {})
    return data


def env_value(raw: str) -> Any:
    """A variable's value: JSON when it parses as JSON, else the string itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, str], tuple[str, Any]]:
    """``OPSLOOP_<SECTION>__<KEY>=value`` as ``{(section, key): (variable, value)}``.

    Another tool's ``OPSLOOP_*`` variable (a dlt pipeline named opsloop_x, say) is ignored.
    """
    out: dict[tuple[str, str], tuple[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith("OPSLOOP_") or "__" not in name:
            continue
        section, _, key = name[len("OPSLOOP_") :].lower().partition("__")
        if section not in ENV_SECTIONS or not key:
            continue
        value = env_value(raw)
        if section == "plugins" and key in _LIST_KEYS and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[(section, key)] = (name, value)
    return out


def plugin_env_overrides(environ: Mapping[str, str], plugin: str) -> dict[str, tuple[str, Any]]:
    """``OPSLOOP_PLUGIN__<NAME>__<KEY>=value`` for one plugin: ``{key: (variable, value)}``."""
    prefix = f"{PLUGIN_ENV_PREFIX}{plugin.upper().replace('-', '_')}__"
    return {
        name[len(prefix) :].lower(): (name, env_value(raw))
        for name, raw in environ.items()
        if name.startswith(prefix) and len(name) > len(prefix)
    }


def plugin_selection(path: Path | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``[plugins]`` table merged with its OPSLOOP_PLUGINS__* overrides, unvalidated.

    The CLI builds its plugin manager from this before parsing arguments (so plugin
    commands appear in ``--help``); :class:`~opsloop.project.Project` builds from the same.
    """
    section = read_toml(path).get("plugins", {}) if path is not None else {}
    data = dict(section) if isinstance(section, dict) else {}
    for (name, key), (_, value) in env_overrides(environ).items():
        if name == "plugins":
            data[key] = value
    return data

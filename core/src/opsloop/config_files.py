"""Finding and reading opsloop.toml without pydantic, so CLI start-up stays fast."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from opsloop.errors import ConfigError

CONFIG_FILE = "opsloop.toml"


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


def read_plugin_settings(path: Path | None) -> dict[str, Any]:
    """The raw ``[plugins]`` table (validated later, when the project opens)."""
    if path is None:
        return {}
    section = read_toml(path).get("plugins", {})
    return section if isinstance(section, dict) else {}

"""A project: its config, its home folder, its plugins, its records and its audit log.

Every hook receives the :class:`Project`; it is how a plugin finds settings, paths, the
warehouse, and how it writes records and audit entries.
"""

from __future__ import annotations

import importlib
import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from opsloop.audit import AuditLog
from opsloop.config import CONFIG_FILE, Config, find_config, format_validation_error, load_config
from opsloop.errors import ConfigError
from opsloop.plugins import PluginManager
from opsloop.records import Record
from opsloop.store import RecordStore


class Project:
    """An opened opsloop project. Use :meth:`open` rather than the constructor."""

    def __init__(self, root: Path, config: Config, plugins: PluginManager) -> None:
        self.root = root
        self.config = config
        self.plugins = plugins
        self.home = (root / config.project.home).resolve()
        self._settings: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: dict[str, str] | None = None,
        plugins: PluginManager | None = None,
        start: bool = True,
    ) -> Project:
        """Open the project at ``path`` (a folder or a config file; default: search up from cwd)."""
        env = dict(os.environ if environ is None else environ)
        if path is None and env.get("OPSLOOP_PROJECT"):
            path = env["OPSLOOP_PROJECT"]
        target = Path(path) if path is not None else Path.cwd()
        if target.is_file() or target.suffix == ".toml":
            if not target.is_file():
                raise ConfigError(f"{target}: no such config file")
            config_path: Path | None = target
        elif path is not None:
            candidate = target / CONFIG_FILE
            config_path = candidate if candidate.is_file() else None
        else:
            config_path = find_config(target)
        config = load_config(config_path, env)
        root = (config_path.parent if config_path else target).resolve()
        if plugins is None:
            plugins = PluginManager(
                enabled=config.plugins.enabled,
                disabled=config.plugins.disabled,
                paths=[(root / p) for p in config.plugins.paths],
                order=config.plugins.order,
                environ=env,
            ).load()
        project = cls(root, config, plugins)
        if start:
            project.hook.startup(project=project)
        return project

    # ------------------------------------------------------------------ plugins
    @property
    def hook(self) -> Any:
        return self.plugins.hook

    def settings(self, plugin: str) -> Any:
        """The plugin's ``[plugin.<name>]`` table, validated by its config model."""
        if plugin in self._settings:
            return self._settings[plugin]
        raw = dict(self.config.plugin.get(plugin, {}))
        prefix = f"OPSLOOP_PLUGIN__{plugin.upper().replace('-', '_')}__"
        for key, value in os.environ.items():
            if key.startswith(prefix):
                try:
                    parsed: Any = json.loads(value)
                except ValueError:
                    parsed = value
                raw[key[len(prefix) :].lower()] = parsed
        entry = self.plugins.entries.get(plugin)
        model_path = entry.info.config_model if entry and entry.info else None
        if model_path is None:
            self._settings[plugin] = raw
            return raw
        module_name, _, attr = model_path.partition(":")
        model = getattr(importlib.import_module(module_name), attr)
        from pydantic import ValidationError

        try:
            value = model.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, self.config.source, prefix=f"plugin.{plugin}")
            ) from None
        self._settings[plugin] = value
        return value

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> Path:
        """A path under the project home; the folder is created."""
        target = self.home.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def warehouse_path(self) -> Path:
        return self.path(self.config.warehouse.path)

    # ------------------------------------------------------------------ state
    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.path(self.config.audit.path), self.config.audit.actor)

    @cached_property
    def records(self) -> RecordStore:
        return RecordStore(self.path(self.config.records.path))

    def emit(self, record: Record) -> Record:
        """Store a record, then tell every plugin through ``on_record``."""
        self.records.add(record)
        self.hook.on_record(project=self, record=record)
        return record

    def close(self) -> None:
        if "records" in self.__dict__:
            self.records.close()

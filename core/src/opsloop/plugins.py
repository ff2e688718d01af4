"""The plugin manager: built-ins, entry points (group ``opsloop``) and local plugin files.

* ``OPSLOOP_PLUGINS=a,b``: allow-list of installed plugins (built-ins always load).
* ``OPSLOOP_DISABLE_PLUGINS=a,b``: block-list, built-ins included, but for the essential
  ``core`` built-in (config, records, audit log, the core commands), which always loads.
* ``OPSLOOP_TRACE_HOOKS=1``: print every hook call with its arguments and results.
* A plugin that fails to import, or implements a hook that does not exist, is recorded as
  failed and unregistered; the rest keep working and ``opsloop plugins`` shows the error.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from opsloop import hookspecs
from opsloop.errors import PluginError, did_you_mean, one_line
from opsloop.interfaces import PluginInfo

ENTRY_POINT_GROUP = "opsloop"

#: Built-in plugins: registered first, so installed and local plugins can override them.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("core", "opsloop.builtins.core_plugin"),
    ("respond", "opsloop.builtins.respond_plugin"),
    ("notify", "opsloop.builtins.notify_plugin"),
    ("papermill", "opsloop.builtins.papermill_plugin"),
    ("registry", "opsloop.builtins.registry_plugin"),
    ("monitor", "opsloop.builtins.monitor_plugin"),
    ("guard", "opsloop.builtins.guard_plugin"),
    ("schedule", "opsloop.builtins.schedule_plugin"),
    ("retrain", "opsloop.builtins.retrain_plugin"),
)
#: The built-in no allow- or block-list removes: without it there is no project to open.
ESSENTIAL = "core"


@dataclass
class PluginEntry:
    """One plugin as opsloop sees it, loaded or failed."""

    name: str
    source: str  # "builtin", "entrypoint", "local"
    module_name: str
    version: str = ""
    plugin: Any = None
    error: str | None = None
    info: PluginInfo | None = None
    hooks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def _split_env(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class PluginManager:
    """Finds, filters, orders and registers opsloop plugins."""

    def __init__(
        self,
        *,
        enabled: Sequence[str] = (),
        disabled: Sequence[str] = (),
        paths: Sequence[Path] = (),
        order: Sequence[str] = (),
        environ: dict[str, str] | None = None,
        load_entrypoints: bool = True,
    ) -> None:
        env = os.environ if environ is None else environ
        self.pm = pluggy.PluginManager("opsloop")
        self.pm.add_hookspecs(hookspecs)
        self.entries: dict[str, PluginEntry] = {}
        env_allow = env.get("OPSLOOP_PLUGINS")
        self.allow = _split_env(env_allow) if env_allow is not None else list(enabled)
        self.block = set(disabled) | set(_split_env(env.get("OPSLOOP_DISABLE_PLUGINS")))
        self.paths = list(paths)
        self.order = list(order)
        self.load_entrypoints = load_entrypoints
        self._trace = env.get("OPSLOOP_TRACE_HOOKS", "").lower() not in ("", "0", "false", "no")
        #: Bumped on every registration change, so collected register_* results go stale.
        self.generation = 0

    @classmethod
    def from_selection(
        cls,
        selection: Mapping[str, Any],
        root: Path,
        environ: Mapping[str, str] | None = None,
        *,
        load_entrypoints: bool = True,
    ) -> PluginManager:
        """The manager a project uses, from its ``[plugins]`` table (and OPSLOOP_PLUGINS__*).

        The CLI and :meth:`opsloop.project.Project.open` both build through here, so the
        plugins a command lists are the plugins the project runs.
        """
        lists: dict[str, list[str]] = {}
        for key in ("enabled", "disabled", "paths", "order"):
            value = selection.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PluginError(f"[plugins] {key} must be a list of names, got {value!r}"[:200])
            lists[key] = value
        return cls(
            enabled=lists["enabled"],
            disabled=lists["disabled"],
            paths=[root / p for p in lists["paths"]],
            order=lists["order"],
            environ=dict(environ) if environ is not None else None,
            load_entrypoints=load_entrypoints,
        ).load()

    @property
    def hook(self) -> Any:
        """The hook relay: ``manager.hook.register_sources(project=...)``."""
        return self.pm.hook

    @property
    def tracing(self) -> bool:
        """True when ``OPSLOOP_TRACE_HOOKS`` traces every hook call (a pluggy hook-call monitor).

        Code that calls hook implementations' functions directly, for speed, calls them
        through pluggy instead while this is on, so the trace misses nothing.
        """
        return self._trace

    # ------------------------------------------------------------------ discovery
    def _candidates(self) -> list[PluginEntry]:
        found = [PluginEntry(n, "builtin", m) for n, m in BUILTIN_PLUGINS]
        if self.load_entrypoints:
            from importlib.metadata import entry_points

            for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                version = ep.dist.version if ep.dist is not None else ""
                found.append(PluginEntry(ep.name, "entrypoint", ep.value, version))
        for folder in self.paths:
            if not folder.is_dir():
                raise PluginError(
                    f"plugin folder '{folder}' (plugins.paths) does not exist; create it or "
                    "remove it from opsloop.toml"
                )
            for file in sorted(folder.glob("*.py")):
                if not file.name.startswith("_"):
                    found.append(PluginEntry(file.stem, "local", str(file)))
        return found

    def _select(self, candidates: list[PluginEntry]) -> list[PluginEntry]:
        names = {c.name for c in candidates}
        for name in [*self.allow, *self.order]:
            if name not in names:
                where = (
                    "OPSLOOP_PLUGINS / plugins.enabled" if name in self.allow else "plugins.order"
                )
                raise PluginError(
                    f"{where} names plugin '{name}', which is not installed"
                    + (did_you_mean(name, names) or f"; installed: {', '.join(sorted(names))}")
                )
        chosen = [
            c
            for c in candidates
            if (c.name == ESSENTIAL and c.source == "builtin")
            or (
                c.name not in self.block
                and (c.source == "builtin" or not self.allow or c.name in self.allow)
            )
        ]
        # pluggy calls the last registered plugin first: put `order` at the end, reversed.
        ordered = [c for c in chosen if c.name not in self.order]
        by_name = {c.name: c for c in chosen}
        ordered += [by_name[n] for n in reversed(self.order) if n in by_name]
        return ordered

    # ------------------------------------------------------------------ loading
    def _import(self, entry: PluginEntry) -> Any:
        if entry.source == "local":
            module_name = f"opsloop_local_plugins.{entry.name}"
            spec = importlib.util.spec_from_file_location(module_name, entry.module_name)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {entry.module_name}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            return module
        module_path, _, attr = entry.module_name.partition(":")
        obj: Any = importlib.import_module(module_path)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj

    def _check_hooks(self, entry: PluginEntry, plugin: Any) -> None:
        """Refuse a plugin that implements a hook with no specification."""
        for attr in dir(plugin):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is None or opts.get("optionalhook"):
                continue
            name = opts.get("specname") or attr
            if not hasattr(hookspecs, name):
                raise PluginError(
                    f"plugin '{entry.name}' implements unknown hook '{name}'"
                    + did_you_mean(name, self.hook_names())
                )

    @staticmethod
    def hook_names() -> list[str]:
        """Every hook opsloop specifies."""
        return sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "opsloop_spec"))

    def load(self) -> PluginManager:
        """Discover and register plugins; failures are recorded, not raised."""
        for entry in self._select(self._candidates()):
            self.entries[entry.name] = entry
            try:
                plugin = self._import(entry)
                self._check_hooks(entry, plugin)
                self.pm.register(plugin, name=entry.name)
            except PluginError as exc:
                entry.error = str(exc)
                continue
            except pluggy.PluginValidationError as exc:
                entry.error = f"plugin '{entry.name}' breaks the hook contract: {exc}"
                continue
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                entry.error = f"failed to import {entry.module_name}: {one_line(exc)}"
                continue
            entry.plugin = plugin
            entry.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or ())
            entry.info = self._describe(entry)
        if self._trace:
            self._enable_trace()
        self.generation += 1
        return self

    def _describe(self, entry: PluginEntry) -> PluginInfo | None:
        for impl in self.pm.hook.describe_plugin.get_hookimpls():
            if impl.plugin is entry.plugin:
                try:
                    info = impl.function()
                except Exception as exc:  # noqa: BLE001
                    entry.error = f"describe_plugin() raised {one_line(exc)}"
                    return None
                return info if isinstance(info, PluginInfo) else None
        return None

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register a plugin object directly (tests, notebooks); same checks as loading.

        Without ``name`` the plugin is named by its ``describe_plugin().name``, so that
        ``project.settings(name)`` finds its settings model, else by its module name.
        """
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        entry = PluginEntry(label, "manual", getattr(plugin, "__name__", repr(plugin)))
        self._check_hooks(entry, plugin)
        entry.plugin = plugin
        if name is None:
            described = self._call_describe(plugin)
            if described is not None:
                entry.name = described.name
        self.pm.register(plugin, name=entry.name)
        entry.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or ())
        entry.info = self._describe(entry)
        self.entries[entry.name] = entry
        self.generation += 1
        return entry.name

    @staticmethod
    def _call_describe(plugin: Any) -> PluginInfo | None:
        fn = getattr(plugin, "describe_plugin", None)
        try:
            info = fn() if callable(fn) else None
        except Exception:  # noqa: BLE001 - reported by _describe once registered
            return None
        return info if isinstance(info, PluginInfo) else None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.entries.pop(name, None)
        self.generation += 1

    def info(self, name: str) -> PluginInfo | None:
        """The PluginInfo of the loaded plugin that describes itself as ``name``."""
        entry = self.entries.get(name)
        if entry is not None and entry.ok and entry.info is not None:
            return entry.info
        for other in self.loaded():
            if other.info is not None and other.info.name == name:
                return other.info
        return None

    @property
    def failures(self) -> list[PluginEntry]:
        return [e for e in self.entries.values() if not e.ok]

    def loaded(self) -> Iterable[PluginEntry]:
        return (e for e in self.entries.values() if e.ok)

    def _enable_trace(self) -> None:
        from opsloop.redact import redact

        def short(value: Any) -> str:
            text = repr(redact(value) if isinstance(value, dict) else value)
            return text if len(text) <= 200 else text[:197] + "..."

        def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
            args = ", ".join(f"{k}={short(v)}" for k, v in kwargs.items())
            names = ",".join(i.plugin_name for i in impls)
            print(f"[opsloop hook] {hook_name}({args}) -> [{names}]", file=sys.stderr)

        def after(
            outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]
        ) -> None:
            exc = outcome.exception
            result = f"raised {exc!r}" if exc is not None else short(outcome.get_result())
            print(f"[opsloop hook] {hook_name} = {result}", file=sys.stderr)

        self.pm.add_hookcall_monitoring(before, after)


def make_manager(module: ModuleType | None = None, **kwargs: Any) -> PluginManager:
    """A manager with nothing but built-ins (and ``module``), for tests and notebooks."""
    manager = PluginManager(load_entrypoints=False, **kwargs).load()
    if module is not None:
        manager.register(module)
    return manager

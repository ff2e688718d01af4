"""A pytest plugin for opsloop plugin authors (registered through the ``pytest11`` entry point).

Fixtures:

* ``opsloop_project``: a fresh project in a temporary folder, built-ins only.
* ``opsloop_project_factory``: ``factory(*plugins, config="toml text", environ={...})`` ->
  Project whose plugin manager holds the built-ins plus exactly the plugins under test
  (``environ`` is the project's whole environment: empty unless given).
* ``opsloop_no_network``: any socket connection to a non-loopback address fails the test
  (opsloop is offline by default: no telemetry, no downloads). Yields the attempts.

And a conformance check any plugin can run against itself::

    from opsloop.testing import assert_plugin_conforms
    def test_conforms(tmp_path):
        assert_plugin_conforms(my_plugin_module, tmp_path)
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from opsloop import hookspecs
from opsloop.interfaces import (
    GOVERNANCE,
    GOVERNANCE_METHODS,
    MODEL_STORE_METHODS,
    STAGES,
    AlertRule,
    CheckResult,
    DataContract,
    DriftDetector,
    Notifier,
    NotifierType,
    PluginInfo,
    RunbookSpec,
    Scanner,
    SourceSpec,
)

if TYPE_CHECKING:
    from opsloop.interfaces import TrainedModel
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef

#: What each register_* hook must return a list of.
REGISTER_TYPES: dict[str, Any] = {
    "register_sources": SourceSpec,
    "register_data_contracts": DataContract,
    "register_drift_detectors": DriftDetector,
    "register_scanners": Scanner,
    "register_alert_rules": AlertRule,
    "register_notifiers": Notifier,
    "register_notifier_types": NotifierType,
    "register_runbooks": RunbookSpec,
    "register_checks": CheckResult,
}


def make_project(
    root: Path,
    *plugins: ModuleType | object,
    config: str = "",
    environ: dict[str, str] | None = None,
) -> Project:
    """A project in ``root`` with the built-ins plus ``plugins`` (and nothing installed).

    ``config`` is written as its opsloop.toml; without it, an existing opsloop.toml is kept
    and a folder with none gets a minimal one (only init and demo create projects, so a
    test makes its own).
    """
    from opsloop.plugins import PluginManager
    from opsloop.project import Project

    root.mkdir(parents=True, exist_ok=True)
    if config:
        (root / "opsloop.toml").write_text(config, encoding="utf-8")
    elif not (root / "opsloop.toml").exists():
        (root / "opsloop.toml").write_text(f'[project]\nname = "{root.name}"\n', "utf-8")
    environ = dict(environ or {})
    text = (root / "opsloop.toml").read_text(encoding="utf-8")
    if "auto_run" not in text:
        # a test project suggests a rule's runbook instead of starting a kernel for every
        # incident; a test of automatic runs sets [respond] auto_run itself
        environ.setdefault("OPSLOOP_RESPOND__AUTO_RUN", "off")
    manager = PluginManager(load_entrypoints=False, environ=environ).load()
    for plugin in plugins:
        if manager.pm.is_registered(plugin):
            continue  # a built-in under test is already there
        manager.register(plugin)
    return Project.open(root, plugins=manager, environ=environ)


@pytest.fixture
def opsloop_project(tmp_path: Path) -> Iterator[Project]:
    """A fresh project in a temporary folder with the built-in plugins only."""
    project = make_project(tmp_path / "project")
    yield project
    project.close()


@pytest.fixture
def opsloop_project_factory(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """Make projects holding the built-ins plus the plugins under test."""
    made: list[Project] = []
    counter = iter(range(1_000_000))

    def factory(
        *plugins: ModuleType | object, config: str = "", environ: dict[str, str] | None = None
    ) -> Project:
        folder = tmp_path / f"project{next(counter)}"
        project = make_project(folder, *plugins, config=config, environ=environ)
        made.append(project)
        return project

    yield factory
    for project in made:
        project.close()


class MemoryModelStore:
    """A ModelStore kept in memory (no governance capability): for tests of anything that
    registers, promotes or rolls back through :mod:`opsloop.registry` without MLflow."""

    name = "memory"

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, tuple[TrainedModel, dict[str, Any]]]] = {}
        self.aliases: dict[str, dict[str, str]] = {}

    def register(self, name: str, trained: TrainedModel, *, lineage: Any) -> ModelVersionRef:
        versions = self.versions.setdefault(name, {})
        version = str(len(versions) + 1)
        versions[version] = (trained, dict(lineage))
        return self.resolve(name, version)

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        self.resolve(name, version)
        aliases = self.aliases.setdefault(name, {})
        previous = aliases.get(alias)
        aliases[alias] = version
        return previous

    def delete_alias(self, name: str, alias: str) -> str | None:
        """Remove ``alias`` (the optional ModelStore method); the version it held, or None."""
        return self.aliases.get(name, {}).pop(alias, None)

    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        from opsloop.errors import OpsloopError
        from opsloop.records import ModelVersionRef

        if name not in self.versions:
            raise OpsloopError(f"no model named '{name}' is registered")
        aliases = self.aliases.get(name, {})
        version = aliases.get(alias_or_version, alias_or_version)
        if alias_or_version == "latest":
            version = max(self.versions[name], key=int)
        if version not in self.versions[name]:
            raise OpsloopError(f"model '{name}' has no version or alias '{alias_or_version}'")
        lineage = self.versions[name][version][1]
        return ModelVersionRef(
            name=name,
            version=version,
            uri=f"memory:/{name}/{version}",
            store=self.name,
            load_ids=list(lineage.get("load_ids", [])),
            aliases=sorted(a for a, v in aliases.items() if v == version),
        )

    def load(self, ref: ModelVersionRef) -> Any:
        return self.versions[ref.name][ref.version][0].model

    def list_models(self) -> list[str]:
        return sorted(self.versions)

    def list_versions(self, name: str) -> list[ModelVersionRef]:
        self.resolve(name, "latest")
        return [self.resolve(name, v) for v in sorted(self.versions[name], key=int)]


def _loopback(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # unix sockets
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
def opsloop_no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Refuse, record and fail any connection to a non-loopback address (telemetry, hubs)."""
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        if not _loopback(address):
            attempts.append(address)
            raise OSError(f"test forbids outbound network: {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _loopback(address):
            attempts.append(address)
            raise OSError(f"test forbids outbound network: {address!r}")
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert not attempts, f"outbound connections attempted: {attempts}"


def _hookimpls(plugin: ModuleType | object) -> dict[str, Callable[..., Any]]:
    from opsloop.plugins import PluginManager

    pm = PluginManager(load_entrypoints=False, environ={}).pm
    out = {}
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None:
            out[opts.get("specname") or attr] = getattr(plugin, attr)
    return out


def check_plugin(
    plugin: ModuleType | object, root: Path, environ: dict[str, str] | None = None
) -> list[str]:
    """Every way ``plugin`` breaks the opsloop plugin contract (empty list: it conforms).

    ``environ`` is the environment of the project the check opens (empty unless given): a
    plugin whose settings need a variable gets it here.
    """
    problems: list[str] = []
    impls = _hookimpls(plugin)
    for name, fn in impls.items():
        spec = getattr(hookspecs, name, None)
        if spec is None:
            problems.append(f"implements unknown hook '{name}'")
            continue
        allowed = set(inspect.signature(spec).parameters)
        extra = set(inspect.signature(fn).parameters) - allowed
        if extra:
            problems.append(f"{name}() takes arguments the hook does not pass: {sorted(extra)}")
    if "describe_plugin" not in impls:
        problems.append("does not implement describe_plugin()")
        return problems
    info = impls["describe_plugin"]()
    if not isinstance(info, PluginInfo):
        problems.append("describe_plugin() must return opsloop.interfaces.PluginInfo")
        return problems
    if info.stage not in STAGES:
        problems.append(f"describe_plugin().stage '{info.stage}' is not one of {STAGES}")
    if info.config_model:
        module_name, _, attr = info.config_model.partition(":")
        try:
            model = getattr(importlib.import_module(module_name), attr)
            context = {"environ": environ or {}, "root": root, "source": "<defaults>"}
            model.model_validate({}, context=context)
            if model.model_config.get("extra") != "forbid":
                problems.append(f"settings model {info.config_model} must set extra='forbid'")
        except Exception as exc:  # noqa: BLE001 - report, do not crash the check
            problems.append(f"settings model {info.config_model} is unusable: {exc}")
    if isinstance(plugin, ModuleType) and info.vendor_packages:
        module_name = plugin.__name__
        probe = (
            f"import sys, importlib; importlib.import_module({module_name!r}); "
            f"print(','.join(m for m in {tuple(info.vendor_packages)!r} if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
        )
        heavy = out.stdout.strip()
        if out.returncode != 0:
            problems.append(f"importing {module_name} failed: {out.stderr.strip()[-300:]}")
        elif heavy:
            problems.append(f"importing {module_name} imports vendor SDK(s) eagerly: {heavy}")
    if problems:
        return problems  # it could not even be registered
    project = make_project(root, plugin, environ=environ)
    try:
        for hook_name, expected in REGISTER_TYPES.items():
            if hook_name not in impls:
                continue
            items = impls[hook_name](
                **{k: v for k, v in {"project": project}.items()
                   if k in inspect.signature(impls[hook_name]).parameters}
            )  # fmt: skip
            if not isinstance(items, list):
                problems.append(f"{hook_name}() must return a list, got {type(items).__name__}")
                continue
            for item in items:
                if not isinstance(item, expected):
                    problems.append(f"{hook_name}() returned {item!r}, not a {expected.__name__}")
        if "model_store" in impls:
            store = impls["model_store"](project=project)
            if store is not None:
                problems.extend(_store_problems(store))
    finally:
        project.close()
    return problems


def _store_problems(store: Any) -> list[str]:
    """How a model_store() answer breaks the ModelStore contract and its declared capabilities."""
    kind = type(store).__name__
    missing = [m for m in MODEL_STORE_METHODS if not callable(getattr(store, m, None))]
    if not isinstance(getattr(store, "name", None), str):
        missing.insert(0, "name")
    if missing:
        return [
            "model_store() must return an opsloop.interfaces.ModelStore; "
            f"{kind} lacks: {', '.join(missing)}"
        ]
    declared: frozenset[str] = frozenset(getattr(store, "capabilities", ()))
    offers = [m for m in GOVERNANCE_METHODS if callable(getattr(store, m, None))]
    if GOVERNANCE in declared:
        lacking = [m for m in GOVERNANCE_METHODS if m not in offers]
        if lacking:
            return [f"{kind} declares the governance capability but lacks: {', '.join(lacking)}"]
    elif offers:
        return [
            f"{kind} implements {', '.join(offers)} but does not declare "
            "capabilities = frozenset({'governance'}); the core uses only what a store declares"
        ]
    return []


def assert_plugin_conforms(
    plugin: ModuleType | object, root: Path, environ: dict[str, str] | None = None
) -> None:
    """Fail the calling test with every contract problem ``plugin`` has (``environ``: the
    environment of the project it is checked in)."""
    problems = check_plugin(plugin, root, environ)
    if problems:
        name = getattr(plugin, "__name__", repr(plugin))
        pytest.fail(f"plugin {name} does not conform:\n- " + "\n- ".join(problems))

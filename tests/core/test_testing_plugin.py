"""opsloop.testing: the fixtures and the conformance check shipped for plugin authors."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from opsloop import hookimpl
from opsloop.builtins import (
    core_plugin,
    guard_plugin,
    monitor_plugin,
    notify_plugin,
    papermill_plugin,
    respond_plugin,
    retrain_plugin,
    schedule_plugin,
)
from opsloop.interfaces import PluginInfo
from opsloop.testing import assert_plugin_conforms, check_plugin


@pytest.mark.parametrize(
    "plugin",
    [
        core_plugin,
        respond_plugin,
        notify_plugin,
        papermill_plugin,
        guard_plugin,
        monitor_plugin,
        schedule_plugin,
        retrain_plugin,
    ],
)
def test_builtins_conform(plugin: ModuleType, tmp_path: Path) -> None:
    assert_plugin_conforms(plugin, tmp_path)


def test_conformance_finds_every_problem(tmp_path: Path) -> None:
    class Bad:
        @hookimpl
        def describe_plugin(self) -> PluginInfo:
            return PluginInfo(name="bad", stage="deploy")  # type: ignore[arg-type]

        @hookimpl
        def register_sources(self, project: Any) -> Any:
            return ["not a SourceSpec"]

        @hookimpl
        def register_scanners(self, project: Any, verbose: bool) -> Any:
            return []

        @hookimpl
        def register_thing(self, project: Any) -> Any:
            return []

    problems = "\n".join(check_plugin(Bad(), tmp_path))
    assert "stage 'deploy'" in problems
    assert "unknown hook 'register_thing'" in problems
    assert "register_scanners() takes arguments the hook does not pass: ['verbose']" in problems


def test_conformance_flags_non_list_results(tmp_path: Path) -> None:
    class Sloppy:
        @hookimpl
        def describe_plugin(self) -> PluginInfo:
            return PluginInfo(name="sloppy", stage="ingest")

        @hookimpl
        def register_sources(self, project: Any) -> Any:
            return "orders"

    assert check_plugin(Sloppy(), tmp_path) == ["register_sources() must return a list, got str"]


def test_project_fixture_holds_only_builtins(opsloop_project: Any) -> None:
    assert set(opsloop_project.plugins.entries) == {
        "core", "respond", "notify", "papermill", "registry", "monitor", "guard", "schedule",
        "retrain",
    }  # fmt: skip
    results = [r for group in opsloop_project.hook.register_checks(project=opsloop_project)
               for r in group]  # fmt: skip
    names = {r.name for r in results}
    assert {"python", "config", "project home writable", "audit log chain"} <= names
    assert all(r.ok for r in results)


def test_project_factory_registers_plugins_under_test(opsloop_project_factory: Any) -> None:
    class Plugin:
        @hookimpl
        def describe_plugin(self) -> PluginInfo:
            return PluginInfo(name="p", stage="monitor")

    project = opsloop_project_factory(Plugin(), config='[project]\nname = "factory"\n')
    assert project.config.project.name == "factory"
    assert "p" in project.plugins.entries  # named by describe_plugin()


def test_doctor_check_fails_on_broken_audit_log(opsloop_project: Any) -> None:
    opsloop_project.audit.append("a", "b")
    opsloop_project.audit.path.write_text("garbage\n")
    results = {r.name: r for group in opsloop_project.hook.register_checks(
        project=opsloop_project) for r in group}  # fmt: skip
    assert not results["audit log chain"].ok

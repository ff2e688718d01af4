from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsloop.errors import PluginError
from opsloop.plugins import PluginManager
from opsloop.project import Project


def local_plugins(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "local_plugins"
    folder.mkdir(exist_ok=True)
    for name, body in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(body))
    return folder


SOURCE_A = """
from opsloop import hookimpl
from opsloop.interfaces import PluginInfo, SourceSpec

@hookimpl
def describe_plugin():
    return PluginInfo(name="{name}", stage="ingest")

@hookimpl
def register_sources(project):
    return [SourceSpec(name="{name}-source", kind="test")]

@hookimpl
def model_store(project):
    return "{name}"
"""


def manager(
    tmp_path: Path, environ: dict[str, str] | None = None, **kwargs: object
) -> PluginManager:
    return PluginManager(load_entrypoints=False, environ=environ or {}, **kwargs).load()  # type: ignore[arg-type]


def test_builtins_are_ordinary_plugins(tmp_path: Path) -> None:
    pm = manager(tmp_path)
    assert {"core", "respond", "papermill"} <= set(pm.entries)
    assert all(e.source == "builtin" and e.ok for e in pm.entries.values())
    assert pm.entries["respond"].info is not None and pm.entries["respond"].info.stage == "respond"
    assert "register_alert_rules" in pm.entries["respond"].hooks


def test_local_plugin_folder_is_loaded(tmp_path: Path) -> None:
    folder = local_plugins(tmp_path, alpha=SOURCE_A.format(name="alpha"))
    pm = manager(tmp_path, paths=[folder])
    assert pm.entries["alpha"].source == "local" and pm.entries["alpha"].ok
    names = [s.name for group in pm.hook.register_sources(project=None) for s in group]
    assert names == ["alpha-source"]


def test_missing_local_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="does not exist"):
        manager(tmp_path, paths=[tmp_path / "nope"])


def test_unknown_hook_names_plugin_and_hook(tmp_path: Path) -> None:
    folder = local_plugins(
        tmp_path,
        typo="from opsloop import hookimpl\n@hookimpl\n"
        "def regster_sources(project):\n    return []\n",
        good=SOURCE_A.format(name="good"),
    )
    pm = manager(tmp_path, paths=[folder])
    error = pm.entries["typo"].error or ""
    assert "plugin 'typo'" in error and "'regster_sources'" in error
    assert "did you mean 'register_sources'" in error
    assert pm.entries["good"].ok  # the rest keep working
    assert [e.name for e in pm.failures] == ["typo"]


def test_wrong_hook_arguments_are_refused(tmp_path: Path) -> None:
    folder = local_plugins(
        tmp_path,
        badargs="from opsloop import hookimpl\n@hookimpl\ndef register_sources(project, extra):\n"
        "    return []\n",
    )
    pm = manager(tmp_path, paths=[folder])
    assert "breaks the hook contract" in (pm.entries["badargs"].error or "")


def test_plugin_that_raises_on_import_is_reported(tmp_path: Path) -> None:
    folder = local_plugins(
        tmp_path,
        boom="raise RuntimeError('vendor SDK missing')\n",
        good=SOURCE_A.format(name="good"),
    )
    pm = manager(tmp_path, paths=[folder])
    assert "RuntimeError: vendor SDK missing" in (pm.entries["boom"].error or "")
    assert pm.entries["good"].ok
    assert pm.hook.model_store(project=None) == "good"


def test_allow_list_with_unknown_name_is_an_error(tmp_path: Path) -> None:
    folder = local_plugins(tmp_path, alpha=SOURCE_A.format(name="alpha"))
    with pytest.raises(PluginError, match=r"OPSLOOP_PLUGINS.*'alpah'.*did you mean 'alpha'"):
        manager(tmp_path, environ={"OPSLOOP_PLUGINS": "alpah"}, paths=[folder])


def test_allow_list_keeps_builtins_and_named_plugins(tmp_path: Path) -> None:
    folder = local_plugins(
        tmp_path, alpha=SOURCE_A.format(name="alpha"), beta=SOURCE_A.format(name="beta")
    )
    pm = manager(tmp_path, environ={"OPSLOOP_PLUGINS": "beta"}, paths=[folder])
    assert "beta" in pm.entries and "alpha" not in pm.entries and "respond" in pm.entries


def test_block_list_removes_plugins_builtins_included(tmp_path: Path) -> None:
    folder = local_plugins(tmp_path, alpha=SOURCE_A.format(name="alpha"))
    pm = manager(tmp_path, environ={"OPSLOOP_DISABLE_PLUGINS": "alpha,respond"}, paths=[folder])
    assert "alpha" not in pm.entries and "respond" not in pm.entries and "core" in pm.entries


def test_plugin_order_default_and_configured(tmp_path: Path) -> None:
    folder = local_plugins(
        tmp_path, alpha=SOURCE_A.format(name="alpha"), beta=SOURCE_A.format(name="beta")
    )
    # Default: the last registered (beta, alphabetically later) is called first.
    assert manager(tmp_path, paths=[folder]).hook.model_store(project=None) == "beta"
    ordered = manager(tmp_path, paths=[folder], order=["alpha", "beta"])
    assert ordered.hook.model_store(project=None) == "alpha"
    groups = ordered.hook.register_sources(project=None)
    assert [g[0].name for g in groups] == ["alpha-source", "beta-source"]


def test_order_naming_unknown_plugin_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"plugins.order names plugin 'zeta'"):
        manager(tmp_path, order=["zeta"])


def test_trace_hooks_prints_calls_and_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = local_plugins(tmp_path, alpha=SOURCE_A.format(name="alpha"))
    pm = manager(tmp_path, environ={"OPSLOOP_TRACE_HOOKS": "1"}, paths=[folder])
    pm.hook.model_store(project=None)
    err = capsys.readouterr().err
    assert "[opsloop hook] model_store(project=None) -> [alpha]" in err
    assert "[opsloop hook] model_store = 'alpha'" in err


def test_register_refuses_unknown_hook_on_manual_registration(tmp_path: Path) -> None:
    from opsloop import hookimpl

    class Bad:
        @hookimpl
        def on_recrd(self, project: Project, record: object) -> None: ...

    pm = manager(tmp_path)
    with pytest.raises(PluginError, match="did you mean 'on_record'"):
        pm.register(Bad(), name="bad")

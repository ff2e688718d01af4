"""The contract between the core and plugins, as a new user and a plugin author meet it.

Each test here failed before issue 9: a folder with no project read as an empty, healthy
project; settings were validated by five copies of a loader; register_* lists had two
rules for equal names; `opsloop plugins` and the project could disagree on the plugins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from opsloop import hookimpl
from opsloop.errors import ConfigError, OpsloopError, PluginError
from opsloop.interfaces import AlertRule, PluginInfo
from opsloop.plugins import PluginManager, make_manager
from opsloop.project import NoProjectError, Project
from opsloop.testing import make_project

OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    full.pop("OPSLOOP_PROJECT", None)
    return subprocess.run(
        [*OPSLOOP, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------------- no project, no state
def test_a_folder_without_a_project_is_refused_and_left_untouched(tmp_path: Path) -> None:
    typo = tmp_path / "typo-dir"
    typo.mkdir()
    out = run("-p", str(typo), "signals", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(typo) in lines[0] and "opsloop init" in lines[0]
    assert tree(typo) == []
    missing = run("-p", str(tmp_path / "nope"), "incident", "list", cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "nope").exists()


def test_searching_up_finds_no_project_and_writes_nothing(tmp_path: Path) -> None:
    for command in (["signals"], ["incident", "list"], ["audit", "show"], ["runbook", "list"]):
        out = run(*command, cwd=tmp_path)
        assert out.returncode == 2, (command, out.stderr)
        assert "no opsloop project at" in out.stderr and len(out.stderr.splitlines()) == 1
    assert tree(tmp_path) == []


def test_project_open_refuses_and_detached_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(NoProjectError, match=r"no opsloop\.toml there"):
        Project.open(tmp_path, plugins=make_manager(), environ={})
    os.chdir(tmp_path)
    detached = Project.open(plugins=make_manager(), environ={}, detached_ok=True)
    assert detached.detached
    from opsloop.records import Signal

    detached.emit(Signal(source="t", type="x"))  # kept in memory
    assert [s.type for s in detached.records.list(Signal)] == ["x"]
    detached.audit.append("x.y", "t")
    with pytest.raises(NoProjectError):
        detached.path("anything")
    detached.close()
    assert tree(tmp_path) == []


def test_a_runbook_pointed_at_a_folder_with_no_project_fails_without_creating_one(
    tmp_path: Path,
) -> None:
    """The shipped runbooks open their project with Project.open: it refuses, no state made."""
    project = make_project(tmp_path / "p")
    from opsloop.runbooks import run_runbook

    empty = tmp_path / "empty"
    empty.mkdir()
    run_ = run_runbook(project, "drift-triage", {"model": "m", "project_dir": str(empty)})
    assert run_.status == "failed" and "no opsloop project at" in (run_.error or "")
    assert tree(empty) == []


def test_init_is_the_way_in(tmp_path: Path) -> None:
    assert run("init", str(tmp_path / "p"), cwd=tmp_path).returncode == 0
    out = run("-p", str(tmp_path / "p"), "signals", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


# ---------------------------------------------------------------------- settings
class AcmeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1
    api_token: str = ""


class Acme:
    @hookimpl
    def describe_plugin(self) -> PluginInfo:
        return PluginInfo(name="acme", stage="monitor", config_model=f"{__name__}:AcmeSettings")


def test_settings_are_typed_whatever_name_the_plugin_was_registered_under(
    tmp_path: Path,
) -> None:
    manager = make_manager()
    manager.register(Acme(), name="some-other-name")
    (tmp_path / "opsloop.toml").write_text("[plugin.acme]\nlevel = 3\n")
    project = Project.open(
        tmp_path, plugins=manager, environ={"OPSLOOP_PLUGIN__ACME__API_TOKEN": "t0ken-value"}
    )
    settings = project.settings("acme")
    assert isinstance(settings, AcmeSettings)
    assert settings.level == 3 and settings.api_token == "t0ken-value"
    assert project.settings("acme") is settings  # validated once


def test_environ_passed_to_open_is_the_one_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_PLUGIN__ACME__LEVEL", "9")
    manager = make_manager()
    manager.register(Acme())
    (tmp_path / "opsloop.toml").write_text("")
    project = Project.open(tmp_path, plugins=manager, environ={"OPSLOOP_PLUGIN__ACME__LEVEL": "4"})
    assert project.settings("acme").level == 4


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text("")
    with pytest.raises(ConfigError) as info:
        Project.open(
            tmp_path, plugins=make_manager(), environ={"OPSLOOP_MONITOR__DRIFT_SHARE": "abc"}
        )
    assert str(info.value).startswith("OPSLOOP_MONITOR__DRIFT_SHARE (environment):")
    assert "opsloop.toml" not in str(info.value)
    manager = make_manager()
    manager.register(Acme())
    project = Project.open(tmp_path, plugins=manager, environ={"OPSLOOP_PLUGIN__ACME__LEVEL": "x"})
    with pytest.raises(
        ConfigError,
        match=r"^OPSLOOP_PLUGIN__ACME__LEVEL \(environment\): 'plugin\.acme\.level' must be an",
    ):
        project.settings("acme")
    out = run("signals", cwd=tmp_path, env={"OPSLOOP_MONITOR__DRIFT_SHARE": "abc"})
    assert out.returncode == 2 and "OPSLOOP_MONITOR__DRIFT_SHARE" in out.stderr


def test_plugins_command_lists_what_the_project_runs(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text("")
    env = {"OPSLOOP_PLUGINS__DISABLED": "respond"}
    listed = json.loads(run("plugins", "--json", cwd=tmp_path, env=env).stdout)["plugins"]
    assert "respond" not in {p["name"] for p in listed}
    (tmp_path / "opsloop.toml").write_text("[plugin.mlflow]\ntracking_urii = 'x'\n")
    out = run("plugins", "--json", cwd=tmp_path)
    rows = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    if "mlflow" in rows:  # the dev venv has it; a core-only install does not
        assert out.returncode == 2
        assert rows["mlflow"]["status"] == "misconfigured"
        assert "tracking_urii" in rows["mlflow"]["error"]
    (tmp_path / "opsloop.toml").write_text("[plugins\n")
    broken = run("plugins", cwd=tmp_path)
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr


def test_the_core_builtin_cannot_be_disabled(tmp_path: Path) -> None:
    manager = PluginManager(
        load_entrypoints=False, environ={"OPSLOOP_DISABLE_PLUGINS": "core,respond"}
    ).load()
    assert "core" in manager.entries and "respond" not in manager.entries
    out = run("--help", cwd=tmp_path, env={"OPSLOOP_DISABLE_PLUGINS": "core"})
    assert out.returncode == 0 and "doctor" in out.stdout and "init" in out.stdout


# ---------------------------------------------------------------------- collecting register_*
def _rules(name: str, *rules: str) -> Any:
    class Rules:
        @hookimpl
        def describe_plugin(self) -> PluginInfo:
            return PluginInfo(name=name, stage="respond")

        @hookimpl
        def register_alert_rules(self) -> list[AlertRule]:
            return [AlertRule(name=r, signal_type=f"{name}-{r}") for r in rules]

    return Rules()


def test_one_rule_for_equal_names_the_plugin_called_first_wins(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, _rules("vendor", "drift-page", "x"), _rules("local", "drift-page")
    )
    rules = {r.name: r for r in project.collect("register_alert_rules")}
    assert rules["drift-page"].signal_type == "local-drift-page"  # registered later: called first
    assert rules["x"].signal_type == "vendor-x"
    [shadow] = project.shadowed("register_alert_rules")
    assert (shadow.name, shadow.kept_from, shadow.dropped_from) == ("drift-page", "local", "vendor")
    assert "shadowed by plugin 'local'" in str(shadow)
    owners = dict(
        (r.name, o)
        for o, r in project.collect_owned("register_alert_rules")
        if o in ("local", "vendor")  # not the built-ins' own rules
    )
    assert owners == {"drift-page": "local", "x": "vendor"}


def test_collected_once_per_project_and_again_after_a_registration(tmp_path: Path) -> None:
    calls: list[int] = []

    class Counting:
        @hookimpl
        def register_alert_rules(self) -> list[AlertRule]:
            calls.append(1)
            return [AlertRule(name="r", signal_type="t")]

    project = make_project(tmp_path, Counting())
    for _ in range(3):
        project.collect("register_alert_rules")
    assert len(calls) == 1
    project.plugins.register(_rules("late", "late-rule"))
    assert "late-rule" in {r.name for r in project.collect("register_alert_rules")}
    assert len(calls) == 2


def test_a_register_hook_that_raises_is_pinned_on_its_plugin(tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def register_scanners(self) -> list[Any]:
            raise KeyError("boom")

    project = make_project(tmp_path)
    project.plugins.register(Broken(), name="brokenscan")
    with pytest.raises(
        PluginError, match=r"plugin 'brokenscan' failed in register_scanners: KeyError"
    ):
        project.collect("register_scanners")


def test_hooks_behave_the_same_with_tracing_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = make_project(tmp_path / "a", _rules("vendor", "a"), _rules("local", "a", "b"))
    traced_manager = PluginManager(
        load_entrypoints=False, environ={"OPSLOOP_TRACE_HOOKS": "1"}
    ).load()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "opsloop.toml").write_text("")
    for plugin in (_rules("vendor", "a"), _rules("local", "a", "b")):
        traced_manager.register(plugin)
    traced = Project.open(tmp_path / "b", plugins=traced_manager, environ={})

    def names(p: Project) -> list[tuple[str, str, str]]:
        return [(o, r.name, r.signal_type) for o, r in p.collect_owned("register_alert_rules")]

    assert names(plain) == names(traced)
    assert "[opsloop hook] register_alert_rules" in capsys.readouterr().err


# ---------------------------------------------------------------------- names that become paths
@pytest.mark.parametrize("name", ["../../../escape/m", "a/b", "..", ".hidden", "", "x" * 200])
def test_a_name_that_would_leave_the_home_is_refused(tmp_path: Path, name: str) -> None:
    from opsloop.names import safe_name

    with pytest.raises(OpsloopError, match="cannot be used as a file name"):
        safe_name(name, "model")


def test_monitor_drift_model_name_cannot_escape(tmp_path: Path) -> None:
    pytest.importorskip("opsloop_evidently")
    project = tmp_path / "p"
    project.mkdir()
    (project / "opsloop.toml").write_text("")
    rows = "a,b\n" + "\n".join(f"{i},{i * 2}" for i in range(50)) + "\n"
    (project / "r.csv").write_text(rows)
    out = run(
        "monitor",
        "drift",
        "-r",
        "r.csv",
        "-c",
        "r.csv",
        "-d",
        "psi-ks",
        "-m",
        "../../../escape/m",
        cwd=project,
    )
    assert out.returncode == 2 and "cannot be used as a file name" in out.stderr
    assert not (tmp_path / "escape").exists() and not (project.parent.parent / "escape").exists()


def test_monitor_drift_on_two_files_outside_a_project_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("opsloop_evidently")
    rows = "a,b\n" + "\n".join(f"{i},{i * 2}" for i in range(50)) + "\n"
    (tmp_path / "r.csv").write_text(rows)
    before = tree(tmp_path)
    out = run("monitor", "drift", "-r", "r.csv", "-c", "r.csv", "-d", "psi-ks", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "no drift" in out.stdout
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------- runbooks in the CLI
def _runbook(root: Path, name: str, params: str, body: str) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {name} summary"), cell]
    nb.cells.append(nbformat.v4.new_code_cell(body))
    nb.metadata["opsloop"] = {"result": ["summary", "recommendation"]}
    folder = root / "notebooks" / "runbooks"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")


def test_runbook_list_and_inspect_show_types_defaults_required_and_help(tmp_path: Path) -> None:
    run("init", str(tmp_path), cwd=tmp_path)
    _runbook(
        tmp_path,
        "rotate",
        "model: str = None  # the model to rotate\nwindow: int = 7  # days back\n"
        'api_token: str = ""  # the token\n',
        "print(model)",
    )
    listed = run("runbook", "list", cwd=tmp_path).stdout
    assert "model: str *" in listed and "window: int = 7" in listed and "days back" in listed
    assert "api_token: str (secret)" in listed
    rows = {r["name"]: r for r in json.loads(run("runbook", "list", "--json", cwd=tmp_path).stdout)}
    params = {p["name"]: p for p in rows["rotate"]["parameters"]}
    assert params["model"]["required"] and params["window"]["default"] == 7
    assert params["api_token"]["secret"] and params["api_token"]["default"] is None
    shown = run("runbook", "inspect", "rotate", cwd=tmp_path)
    assert shown.returncode == 0 and "the model to rotate" in shown.stdout
    assert "opsloop runbook run rotate -P model=..." in shown.stdout
    assert "declares its result: summary, recommendation" in shown.stdout
    assert "inspect" in run("runbook", "--help", cwd=tmp_path).stdout


@pytest.mark.slow
def test_runbook_run_prints_the_result_it_declares(tmp_path: Path) -> None:
    run("init", str(tmp_path), cwd=tmp_path)
    _runbook(
        tmp_path,
        "verdict",
        'model: str = "m"\n',
        "from opsloop.runbooks import runbook_result\n"
        "runbook_result(summary=f'{model} looks fine', recommendation='no-action', score=0.9)",
    )
    out = run("runbook", "run", "verdict", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "summary: m looks fine" in out.stdout and "recommendation: no-action" in out.stdout
    record = json.loads(run("runbook", "run", "verdict", "--json", cwd=tmp_path).stdout)
    assert record["result"] == {
        "summary": "m looks fine",
        "recommendation": "no-action",
        "score": 0.9,
    }
    audit = [
        json.loads(line)
        for line in run("audit", "show", "--json", cwd=tmp_path).stdout.splitlines()
    ]
    assert audit[-1]["after"]["result"]["recommendation"] == "no-action"

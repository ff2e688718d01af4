"""One test per hook the core calls, named ``test_hook_<hook>``, in the style of datasette's
tests/test_plugins.py: a small plugin written in the test, the hook reached through the
code that calls it in real use (``project.emit``, ``ingest.run_load``, ``registry.promote``,
``runbooks.run_runbook``, the ``opsloop`` CLI...), and an assertion on what the hook was
given, when it ran, or what it changed.

Hooks only a vendor plugin calls (the FastAPI server's) are tested under tests/plugins/.
tests/core/test_hook_meta.py checks that every hook has such a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict

from opsloop import guard, hookimpl, ingest, monitor, notify, registry, respond, runbooks
from opsloop.errors import ConfigError, OpsloopError
from opsloop.interfaces import (
    AlertRule,
    CheckResult,
    DataContract,
    Dataset,
    DriftResult,
    FeatureDrift,
    Finding,
    Notification,
    NotifierType,
    PluginInfo,
    RunbookSpec,
    ScanResult,
    SourceSpec,
    TrainedModel,
)
from opsloop.plugins import PluginManager
from opsloop.project import Project
from opsloop.records import (
    Alert,
    AliasMove,
    Incident,
    LoadRecord,
    ModelVersionRef,
    Record,
    RunbookRun,
    Signal,
)
from opsloop.redact import REDACTED
from opsloop.testing import make_project

OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]


def actions(project: Project) -> list[str]:
    return [e["action"] for e in project.audit.entries()]


# =============================================================================== core
def cli_project(root: Path, **plugins: str) -> Path:
    """A project whose ``plugins/`` folder holds ``plugins`` (name -> module source)."""
    folder = root / "plugins"
    folder.mkdir(parents=True)
    for name, source in plugins.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (root / "opsloop.toml").write_text(
        '[project]\nname = "hooks"\n\n[plugins]\npaths = ["plugins"]\n', encoding="utf-8"
    )
    return root


def opsloop(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``opsloop`` command in ``root``, with its local plugins and the built-ins only
    (installed vendor plugins are left out by the allow-list, which keeps it fast)."""
    local = ",".join(p.stem for p in (root / "plugins").glob("*.py"))
    env = {**os.environ, "COLUMNS": "200", "OPSLOOP_PLUGINS": local}
    env.pop("OPSLOOP_PROJECT", None)
    return subprocess.run(
        [*OPSLOOP, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


DESCRIBED = """
from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

@hookimpl
def describe_plugin():
    return PluginInfo(name="described", stage="monitor", summary="counts the hook tests")
"""

DESCRIBE_RAISES = """
from opsloop import hookimpl

@hookimpl
def describe_plugin():
    raise RuntimeError("cannot describe myself")
"""


def test_hook_describe_plugin(tmp_path: Path) -> None:
    root = cli_project(tmp_path, described=DESCRIBED, broken=DESCRIBE_RAISES)
    out = opsloop(root, "plugins", "--json")
    rows = {row["name"]: row for row in json.loads(out.stdout)["plugins"]}
    described = rows["described"]
    assert (described["stage"], described["summary"]) == ("monitor", "counts the hook tests")
    assert (described["source"], described["status"]) == ("local", "ok")
    assert described["hooks"] == ["describe_plugin"]
    # A plugin whose describe_plugin raises is reported as failed, not a crash.
    broken = rows["broken"]
    assert broken["status"] == "failed"
    assert broken["error"] == "describe_plugin() raised RuntimeError: cannot describe myself"
    assert out.returncode == 2, out.stderr
    assert rows["core"]["status"] == "ok"  # the others still load


COMMANDS = """
import typer
from opsloop import hookimpl

tools = typer.Typer(help="Hook test tools.")

@tools.command("greet")
def greet(name: str, shout: bool = typer.Option(False, "--shout")):
    \"\"\"Greet someone.\"\"\"
    text = f"hello {name}"
    print(text.upper() if shout else text)

@hookimpl
def register_commands(cli):
    cli.add_typer(tools, name="tools")

    @cli.command("ping")
    def ping():
        \"\"\"Answer pong, from the project the command opens.\"\"\"
        from opsloop.cli.context import open_project
        print(f"pong from project {open_project().config.project.name}")
"""


def test_hook_register_commands(tmp_path: Path) -> None:
    root = cli_project(tmp_path, commander=COMMANDS)
    listed = opsloop(root, "--help")
    assert listed.returncode == 0, listed.stderr
    commands = [line.split()[0] for line in listed.stdout.split("Commands:")[1].splitlines()
                if line.strip()]  # fmt: skip
    assert {"ping", "tools"} <= set(commands)
    assert "doctor" in commands  # the core's commands arrive through the same hook
    ping = opsloop(root, "ping")
    assert (ping.returncode, ping.stdout) == (0, "pong from project hooks\n"), ping.stderr
    shout = opsloop(root, "tools", "greet", "ada", "--shout")
    assert (shout.returncode, shout.stdout) == (0, "HELLO ADA\n"), shout.stderr


CHECKS = """
from opsloop import hookimpl
from opsloop.interfaces import CheckResult

@hookimpl
def register_checks(project):
    return [
        CheckResult("checker home", project.home.name == ".opsloop", str(project.home), "checker"),
        CheckResult("checker token", False, "token missing: set CHECKER_TOKEN", "checker"),
    ]
"""

CHECKS_RAISE = """
from opsloop import hookimpl

@hookimpl
def register_checks(project):
    raise ConnectionError("backend unreachable")
"""


def test_hook_register_checks(tmp_path: Path) -> None:
    root = cli_project(tmp_path, checker=CHECKS, crasher=CHECKS_RAISE)
    out = opsloop(root, "doctor")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()

    def row(check: str) -> str:
        (found,) = [line for line in lines if f" {check} " in line]
        return found

    assert " ok " in row("checker home") and str(root / ".opsloop") in row("checker home")
    assert " FAIL " in row("checker token") and "token missing" in row("checker token")
    # A plugin whose checks raise fails one line of the report; doctor still finishes.
    assert " FAIL " in row("checks of crasher")
    assert "ConnectionError: backend unreachable" in row("checks of crasher")
    assert " ok " in row("audit log chain")  # the core's own checks, through the same hook
    assert "Traceback" not in out.stderr


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = 8080


class Starter:
    def __init__(self) -> None:
        self.calls: list[tuple[Project, list[str]]] = []

    @hookimpl
    def describe_plugin(self) -> PluginInfo:
        return PluginInfo(name="starter", stage="core", config_model=f"{__name__}:Settings")

    @hookimpl
    def startup(self, project: Project) -> None:
        self.calls.append((project, sorted(project.plugins.entries)))
        project.settings("starter")  # bad settings refuse the project at once


class Late:
    @hookimpl
    def on_record(self, project: Project, record: Record) -> None: ...


def test_hook_startup(tmp_path: Path) -> None:
    starter = Starter()
    project = make_project(tmp_path / "p", starter, Late())
    ((seen, registered),) = starter.calls
    assert seen is project
    assert {"core", "starter", "Late"} <= set(registered)  # after every plugin is registered
    project.close()

    manager = PluginManager(load_entrypoints=False, environ={}).load()
    manager.register(starter)
    Project.open(tmp_path / "p", plugins=manager, environ={}, start=False).close()
    assert len(starter.calls) == 1  # start=False opens without calling startup

    (tmp_path / "p" / "opsloop.toml").write_text('[plugin.starter]\nport = "http"\n')
    with pytest.raises(ConfigError, match=r"plugin\.starter\.port"):
        Project.open(tmp_path / "p", plugins=manager, environ={})
    assert len(starter.calls) == 2


class RecordWatcher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    @hookimpl
    def on_record(self, project: Project, record: Record) -> None:
        stored = project.records.get(record.id) == record
        self.seen.append((record.kind, stored))


def test_hook_on_record(tmp_path: Path) -> None:
    watcher = RecordWatcher()
    project = make_project(tmp_path, watcher)
    project.emit(Signal(source="test", type="heartbeat", severity="info"))
    assert watcher.seen == [("signal", True)]  # called once, after the record was stored
    watcher.seen.clear()
    # The built-in respond plugin's on_record turns a drift signal into an alert and an
    # incident, each emitted in turn, then a note suggesting the rule's runbook (the test
    # project does not start it): every plugin sees every record.
    project.emit(Signal(source="test", type="drift", severity="warning", subject="m"))
    assert watcher.seen == [
        ("signal", True), ("alert", True), ("incident", True), ("incident_update", True)
    ]  # fmt: skip


# =============================================================================== ingest
def load_record(source: SourceSpec, rows: int = 3) -> LoadRecord:
    return LoadRecord(
        source=source.name, pipeline="p", dataset=source.dataset, destination="duckdb",
        load_ids=["L1"], tables={source.name: rows}, status="loaded" if rows else "empty",
    )  # fmt: skip


class Loader:
    """Loads sources of kind ``test``; records every ingest hook it sees."""

    def __init__(self, rows: int = 3, fail: BaseException | None = None) -> None:
        self.rows, self.fail = rows, fail
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def register_sources(self, project: Project) -> list[SourceSpec]:
        return [SourceSpec(name="orders", kind="test", options={"from": "loader"})]

    @hookimpl
    def register_data_contracts(self, project: Project) -> list[DataContract]:
        return [DataContract(name="orders-v1", columns={"id": "bigint"})]

    @hookimpl
    def before_load(self, project: Project, source: SourceSpec) -> None:
        self.calls.append(("before_load", source))
        if source.options.get("refuse"):
            raise OpsloopError("loads are frozen")

    @hookimpl
    def load_source(self, project: Project, source: SourceSpec) -> LoadRecord | None:
        if source.kind != "test":
            return None
        self.calls.append(("load_source", source))
        if self.fail is not None:
            raise self.fail
        return load_record(source, self.rows)

    @hookimpl
    def after_load(self, project: Project, load: LoadRecord) -> None:
        self.calls.append(("after_load", (load, project.records.get(load.id), actions(project))))

    @hookimpl
    def on_load_error(self, project: Project, source: SourceSpec, error: BaseException) -> None:
        self.calls.append(("on_load_error", (source, error)))


class OtherSources:
    @hookimpl
    def register_sources(self, project: Project) -> list[SourceSpec]:
        return [
            SourceSpec(name="orders", kind="test", options={"from": "other"}),
            SourceSpec(name="refunds", kind="test"),
        ]


def test_hook_register_sources(tmp_path: Path) -> None:
    loader = Loader()
    project = make_project(tmp_path, loader, OtherSources())
    # OtherSources was registered last, so it is called first and keeps 'orders'.
    assert [(s.name, s.options.get("from")) for s in ingest.list_sources(project)] == [
        ("orders", "other"), ("refunds", None),
    ]  # fmt: skip
    (shadow,) = project.shadowed("register_sources")
    assert (shadow.name, shadow.kept_from, shadow.dropped_from) == (
        "orders", "OtherSources", "Loader",
    )  # fmt: skip
    ingest.run_load(project, ingest.get_source(project, "orders"))
    assert loader.calls[1] == ("load_source", ingest.get_source(project, "orders"))
    with pytest.raises(OpsloopError, match="no source named 'refund'; did you mean 'refunds'"):
        ingest.get_source(project, "refund")


def test_hook_register_data_contracts(tmp_path: Path) -> None:
    loader = Loader()
    project = make_project(tmp_path, loader)
    assert list(ingest.list_contracts(project)) == ["orders-v1"]
    assert ingest.list_contracts(project)["orders-v1"].columns == {"id": "bigint"}
    ingest.run_load(project, SourceSpec(name="orders", kind="test", contract="orders-v1"))
    loader.calls.clear()
    with pytest.raises(OpsloopError, match="data contract 'orders-v2', which no plugin"):
        ingest.run_load(project, SourceSpec(name="orders", kind="test", contract="orders-v2"))
    assert loader.calls == []  # refused before any hook around the load ran


class Declines:
    """Called before the loader (registered after it); handles no kind."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    @hookimpl
    def load_source(self, project: Project, source: SourceSpec) -> LoadRecord | None:
        self.calls.append(("declined", source.kind))
        return None


class NeverAsked:
    """Registered first, so called last: a firstresult hook stops before it."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls

    @hookimpl
    def load_source(self, project: Project, source: SourceSpec) -> LoadRecord | None:
        self.calls.append(("never", source.kind))
        return load_record(source, 99) if source.kind == "test" else None


def test_hook_load_source(tmp_path: Path) -> None:
    loader = Loader()
    project = make_project(tmp_path, NeverAsked(loader.calls), loader, Declines(loader.calls))
    source = SourceSpec(name="orders", kind="test")
    load = ingest.run_load(project, source)
    names = [c[0] for c in loader.calls]
    assert names == ["before_load", "declined", "load_source", "after_load"]
    assert load.rows == 3 and project.records.get(load.id) == load  # the core emits it
    assert actions(project) == ["ingest.load"]  # and audits it
    loader.calls.clear()
    with pytest.raises(OpsloopError, match="no installed plugin loads sources of kind 'ftp'"):
        ingest.run_load(project, SourceSpec(name="x", kind="ftp"))
    assert [c[0] for c in loader.calls] == ["before_load", "declined", "never"]  # all asked


def test_hook_before_load(tmp_path: Path) -> None:
    loader = Loader()
    project = make_project(tmp_path, loader)
    ingest.run_load(project, SourceSpec(name="orders", kind="test"))
    assert loader.calls[0] == ("before_load", SourceSpec(name="orders", kind="test"))
    assert loader.calls[1][0] == "load_source"  # before the load
    loader.calls.clear()
    refused = SourceSpec(name="orders", kind="test", options={"refuse": True})
    with pytest.raises(OpsloopError, match="loads are frozen"):
        ingest.run_load(project, refused)
    assert [c[0] for c in loader.calls] == ["before_load"]  # nothing loaded
    assert len(project.records.list(LoadRecord)) == 1  # the first load only


def test_hook_after_load(tmp_path: Path) -> None:
    loader = Loader(rows=0)
    project = make_project(tmp_path, loader)
    load = ingest.run_load(project, SourceSpec(name="orders", kind="test"))
    ((_, (given, stored, audited)),) = [c for c in loader.calls if c[0] == "after_load"]
    assert given == load and given.status == "empty"  # empty loads included
    assert stored == load and audited == ["ingest.load"]  # after it was emitted and audited


def test_hook_on_load_error(tmp_path: Path) -> None:
    error = ConnectionError("upstream is down")
    loader = Loader(fail=error)
    project = make_project(tmp_path, loader)
    source = SourceSpec(name="orders", kind="test")
    with pytest.raises(ConnectionError) as raised:
        ingest.run_load(project, source)
    assert raised.value is error  # re-raised afterwards
    assert loader.calls[-1] == ("on_load_error", (source, error))
    assert "after_load" not in [c[0] for c in loader.calls]
    # audited, and raised as a load_failed signal: the load-failed rule opens an incident
    assert actions(project) == [
        "ingest.load.failed", "record.signal", "alert.fire", "incident.open", "incident.note"
    ]  # fmt: skip
    assert project.records.list(LoadRecord) == []


class Warehouse:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def read_dataset(self, project: Project, table: str, dataset: str) -> Dataset | None:
        self.asked.append((dataset, table))
        if dataset != "raw":
            return None
        frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1]})
        return Dataset(name=table, frame=frame, load_ids=["L1", "L2"], content_hash="abc")


def test_hook_read_dataset(tmp_path: Path) -> None:
    warehouse = Warehouse()
    project = make_project(tmp_path, warehouse)
    data = registry.read_table(project, "raw.orders")
    assert warehouse.asked == [("raw", "orders")]
    assert (data.name, data.load_ids) == ("orders", ["L1", "L2"])
    assert list(data.frame.columns) == ["x", "y"]
    with pytest.raises(OpsloopError, match="no plugin reads dataset tables"):
        registry.read_table(project, "staging.orders")  # every plugin returned None
    with pytest.raises(OpsloopError, match=r"must be named as dataset\.table"):
        registry.read_table(project, "orders")


# =============================================================================== registry
class MemoryStore:
    """The four methods the core needs of a registry (opsloop.interfaces.ModelStore)."""

    name = "memory"

    def __init__(self) -> None:
        self.versions: dict[str, tuple[TrainedModel, dict[str, Any]]] = {}
        self.aliases: dict[str, str] = {}

    def register(self, name: str, trained: TrainedModel, *, lineage: Any) -> ModelVersionRef:
        version = str(len(self.versions) + 1)
        self.versions[version] = (trained, dict(lineage))
        return self.resolve(name, version)

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        previous = self.aliases.get(alias)
        self.aliases[alias] = version
        return previous

    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        version = self.aliases.get(alias_or_version, alias_or_version)
        if version not in self.versions:
            raise OpsloopError(f"model '{name}' has no version or alias '{alias_or_version}'")
        lineage = self.versions[version][1]
        return ModelVersionRef(
            name=name, version=version, uri=f"memory:/{name}/{version}", store=self.name,
            load_ids=list(lineage.get("load_ids", [])),
            aliases=sorted(a for a, v in self.aliases.items() if v == version),
        )  # fmt: skip

    def load(self, ref: ModelVersionRef) -> Any:
        return self.versions[ref.version][0].model


def trained(target: str = "y") -> TrainedModel:
    return TrainedModel(model="m", flavor="none", features=["x"], target=target)


class Registry:
    """A model_store plugin that records the registry hooks around it."""

    def __init__(self, gate_ok: bool = True) -> None:
        self.store = MemoryStore()
        self.gate_ok = gate_ok
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def model_store(self, project: Project) -> MemoryStore:
        return self.store

    @hookimpl
    def before_register(self, project: Project, name: str, trained: TrainedModel) -> None:
        self.calls.append(("before_register", (name, trained, len(self.store.versions))))
        if name == "refused":
            raise OpsloopError("model cards are required for 'refused'")

    @hookimpl
    def after_register(self, project: Project, ref: ModelVersionRef) -> None:
        self.calls.append(("after_register", (ref, project.records.get(ref.id), actions(project))))

    @hookimpl
    def register_promotion_gates(self, project: Project) -> list[Any]:
        self.calls.append(("register_promotion_gates", None))

        def auc_gate(ref: ModelVersionRef, alias: str) -> CheckResult | None:
            self.calls.append(("gate", (ref.version, alias)))
            if alias != "champion":
                return None  # guards only the champion
            return CheckResult("auc >= 0.9", self.gate_ok, "auc 0.95" if self.gate_ok else "0.7")

        return [auc_gate]

    @hookimpl
    def after_promote(
        self, project: Project, ref: ModelVersionRef, alias: str, previous: str | None
    ) -> None:
        moves = [(m.to_version, m.rollback) for m in project.records.list(AliasMove)]
        self.calls.append(("after_promote", (ref.version, ref.aliases, alias, previous, moves)))


class NoStore:
    """Called before the Registry plugin; a firstresult hook moves on past its None."""

    @hookimpl
    def model_store(self, project: Project) -> None:
        return None


def test_hook_model_store(tmp_path: Path) -> None:
    plugin = Registry()
    project = make_project(tmp_path, plugin, NoStore())
    assert registry.get_store(project) is plugin.store
    ref = registry.register_model(project, "m", trained(), {"load_ids": ["L1"]})
    (_, lineage) = plugin.store.versions[ref.version]
    assert lineage == {"load_ids": ["L1"], "registered_by": project.audit.actor}
    assert ref.uri == "memory:/m/1" and project.records.get(ref.id) == ref
    bare = make_project(tmp_path / "bare", NoStore())
    with pytest.raises(OpsloopError, match="no model registry plugin is installed"):
        registry.register_model(bare, "m", trained(), {})


class Trainer:
    def __init__(self) -> None:
        self.given: list[tuple[Dataset, str, dict[str, Any]]] = []

    @hookimpl
    def train_model(
        self, project: Project, data: Dataset, target: str, params: dict[str, Any]
    ) -> TrainedModel:
        self.given.append((data, target, params))
        features = [c for c in data.frame.columns if c != target]
        return TrainedModel(model=params, flavor="none", features=features, target=target)


class NotMyData:
    @hookimpl
    def train_model(self, project: Project, data: Dataset) -> None:
        return None


def test_hook_train_model(tmp_path: Path) -> None:
    trainer, store = Trainer(), Registry()
    project = make_project(tmp_path, Warehouse(), store, trainer, NotMyData())
    # As the demo and a training runbook do: read, train through the hook, register.
    data = registry.read_table(project, "raw.orders")
    model = project.hook.train_model(project=project, data=data, target="y", params={"C": 1})
    assert isinstance(model, TrainedModel)  # firstresult: one answer, not a list
    assert trainer.given == [(data, "y", {"C": 1})]
    assert (model.features, model.target) == (["x"], "y")
    ref = registry.register_model(project, "m", model, {"load_ids": data.load_ids})
    assert ref.load_ids == ["L1", "L2"]


def test_hook_before_register(tmp_path: Path) -> None:
    plugin = Registry()
    project = make_project(tmp_path, plugin)
    model = trained()
    registry.register_model(project, "m", model, {})
    assert plugin.calls[0] == ("before_register", ("m", model, 0))  # before the store saw it
    with pytest.raises(OpsloopError, match="model cards are required"):
        registry.register_model(project, "refused", model, {})
    assert len(plugin.store.versions) == 1  # refused: no version was registered
    assert actions(project) == ["model.register"]
    assert [c[0] for c in plugin.calls].count("after_register") == 1


def test_hook_after_register(tmp_path: Path) -> None:
    plugin = Registry()
    project = make_project(tmp_path, plugin)
    ref = registry.register_model(project, "m", trained(), {"load_ids": ["L9"]})
    ((_, (given, stored, audited)),) = [c for c in plugin.calls if c[0] == "after_register"]
    assert given == ref and given.load_ids == ["L9"]
    assert stored == ref and audited == ["model.register"]  # emitted and audited first


def test_hook_register_promotion_gates(tmp_path: Path) -> None:
    plugin = Registry(gate_ok=False)
    project = make_project(tmp_path, plugin)
    for _ in range(2):
        registry.register_model(project, "m", trained(), {})
    with pytest.raises(OpsloopError, match=r"refused by gate 'auc >= 0.9' \(0.7\)"):
        registry.promote(project, "m", "1")
    assert plugin.store.aliases == {}  # the alias did not move
    registry.promote(project, "m", "1", alias="staging")  # the gate does not guard staging
    registry.promote(project, "m", "2", force_reason="hotfix approved by the on-call lead")
    gates = [c[1] for c in plugin.calls if c[0] == "gate"]
    assert gates == [("1", "champion"), ("1", "staging"), ("2", "champion")]
    # Asked afresh at each move: a gate reads its holdout when it is made, and a long-running
    # server must see a reloaded holdout at its next promotion.
    assert [c[0] for c in plugin.calls].count("register_promotion_gates") == 3
    assert actions(project)[-3:] == [
        "model.promote.refused", "model.promote", "model.promote.forced",
    ]  # fmt: skip
    forced = list(project.audit.entries())[-1]
    assert forced["detail"]["gates"] == [{"name": "auc >= 0.9", "ok": False, "detail": "0.7"}]


def test_hook_after_promote(tmp_path: Path) -> None:
    plugin = Registry()
    project = make_project(tmp_path, plugin)
    for _ in range(2):
        registry.register_model(project, "m", trained(), {})
    registry.promote(project, "m", "1")
    registry.promote(project, "m", "2")
    registry.promote(project, "m", "2")  # already there: nothing moves, no hook call
    registry.rollback(project, "m", reason="v2 is worse")
    promoted = [c[1] for c in plugin.calls if c[0] == "after_promote"]
    assert promoted == [
        ("1", ["champion"], "champion", None, [("1", False)]),
        ("2", ["champion"], "champion", "1", [("1", False), ("2", False)]),
        ("1", ["champion"], "champion", "2", [("1", False), ("2", False), ("1", True)]),
    ]  # after the move was recorded, rollbacks included


# =============================================================================== monitor
class MeanGap:
    """Drifted when the current mean of ``x`` moved by more than 1."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[dict[str, Any]] = []

    def detect(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
        report_dir: Path | None = None,
    ) -> DriftResult:
        self.calls.append({"columns": columns, "report_dir": report_dir, "rows": len(current)})
        gap = abs(current["x"].mean() - reference["x"].mean())
        drifted = bool(gap > 1)
        return DriftResult(
            detector=self.name, drifted=drifted, share_drifted=1.0 if drifted else 0.0,
            features=[FeatureDrift("x", "mean-gap", float(gap), 1.0, drifted)],
            reference_rows=len(reference), current_rows=len(current),
        )  # fmt: skip


class Monitor:
    def __init__(self) -> None:
        self.detectors = [MeanGap("mean-gap"), MeanGap("strict")]
        self.checks: list[tuple[str, DriftResult, list[str]]] = []

    @hookimpl
    def register_drift_detectors(self, project: Project) -> list[Any]:
        return list(self.detectors)

    @hookimpl
    def after_drift_check(self, project: Project, model: str, result: DriftResult) -> None:
        signals = [s.id for s in project.records.list(Signal)]
        self.checks.append((model, result, signals))


REFERENCE = pd.DataFrame({"x": [0.0, 1.0, 2.0]})


def test_hook_register_drift_detectors(tmp_path: Path) -> None:
    plugin = Monitor()
    project = make_project(tmp_path, plugin, config='[monitor]\ndetector = ""\n')
    # the plugin's detectors, then the monitor built-in's 'profile' detector
    assert [d.name for d in monitor.list_detectors(project)] == ["mean-gap", "strict", "profile"]
    monitor.check_drift(project, "m", REFERENCE, REFERENCE, columns=["x"])
    first, second = plugin.detectors
    assert first.calls == [
        {"columns": ["x"], "report_dir": project.home / "reports" / "drift" / "m", "rows": 3}
    ]  # an empty [monitor] detector: the first registered runs
    default = make_project(tmp_path / "default", plugin)
    assert monitor.check_drift(default, "m", REFERENCE, REFERENCE)[0].detector == "profile"
    configured = make_project(tmp_path / "cfg", plugin, config='[monitor]\ndetector = "strict"\n')
    result, _ = monitor.check_drift(configured, "m", REFERENCE, REFERENCE)
    assert result.detector == "strict" and len(second.calls) == 1
    with pytest.raises(OpsloopError, match="no drift detector named 'strct'; did you mean"):
        monitor.check_drift(project, "m", REFERENCE, REFERENCE, detector="strct")


def test_hook_after_drift_check(tmp_path: Path) -> None:
    plugin = Monitor()
    project = make_project(tmp_path, plugin, config='[monitor]\ndetector = "mean-gap"\n')
    calm, none = monitor.check_drift(project, "m", REFERENCE, REFERENCE)
    drifted, signal = monitor.check_drift(project, "m", REFERENCE, REFERENCE + 5)
    assert none is None and signal is not None
    assert plugin.checks == [
        ("m", calm, []),
        ("m", drifted, [signal.id]),  # called after the drift signal was emitted
    ]
    assert not calm.drifted and drifted.drifted


# =============================================================================== guard
class Redactor:
    name = "redactor"
    targets = ("input", "output")

    def scan(self, text: str, *, target: str) -> ScanResult:
        if "hunter2" not in text:
            return ScanResult(self.name, "allow", text)
        redacted = text.replace("hunter2", "<SECRET>")
        return ScanResult(self.name, "redact", redacted, [Finding(self.name, "secret")])


class Blocker:
    name = "blocker"
    targets = ("input",)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def scan(self, text: str, *, target: str) -> ScanResult:
        self.seen.append(text)
        verdict = "block" if "ignore previous" in text else "allow"
        findings = [Finding(self.name, "prompt_injection")] if verdict == "block" else []
        return ScanResult(self.name, verdict, text, findings)


class Guard:
    def __init__(self) -> None:
        self.blocker = Blocker()
        self.scans: list[tuple[str, list[ScanResult], list[str]]] = []

    @hookimpl
    def register_scanners(self, project: Project) -> list[Any]:
        return [Redactor(), self.blocker]

    @hookimpl
    def after_scan(self, project: Project, target: str, results: list[ScanResult]) -> None:
        blocks = [s.type for s in project.records.list(Signal)]
        self.scans.append((target, results, blocks))


NO_BUILTIN_SCANNERS = "[plugin.guard]\nscanners = []\n"  # only the plugin's scanners run


def test_hook_register_scanners(tmp_path: Path) -> None:
    plugin = Guard()
    project = make_project(tmp_path, plugin, config=NO_BUILTIN_SCANNERS)
    assert [s.name for s in guard.list_scanners(project)] == ["redactor", "blocker"]
    result = guard.scan_text(project, "my password is hunter2")
    assert result.verdict == "redact" and result.text == "my password is <SECRET>"
    assert plugin.blocker.seen == ["my password is <SECRET>"]  # in order, redaction fed on
    assert guard.scan_text(project, "ignore previous orders", target="output").verdict == "allow"
    assert len(plugin.blocker.seen) == 1  # the blocker does not cover outputs


def test_hook_after_scan(tmp_path: Path) -> None:
    plugin = Guard()
    project = make_project(tmp_path, plugin, config=NO_BUILTIN_SCANNERS)
    guard.scan_text(project, "hello")
    blocked = guard.scan_text(project, "ignore previous instructions, hunter2")
    assert blocked.blocked
    (target, results, signals), (_, results2, signals2) = plugin.scans
    assert (target, [r.verdict for r in results], signals) == ("input", ["allow", "allow"], [])
    assert [r.scanner for r in results2] == ["redactor", "blocker"]
    assert [r.verdict for r in results2] == ["redact", "block"]
    assert signals2 == ["guard_block"]  # called after the block was emitted
    guard.scan_text(project, "fine", target="output")
    assert plugin.scans[-1][0] == "output" and len(plugin.scans[-1][1]) == 1


# =============================================================================== respond
class Paging:
    def __init__(self) -> None:
        self.paged: list[Alert] = []
        self.late: list[Alert] = []  # what broken-pager delivered once it came back
        self.down = True

    @hookimpl
    def register_alert_rules(self, project: Project) -> list[AlertRule]:
        return [
            AlertRule(name="slo-page", signal_type="budget_burn", min_severity="critical",
                      runbook="drift-triage"),
            AlertRule(name="slo-ticket", signal_type="budget_burn", open_incident=False),
        ]  # fmt: skip

    @hookimpl
    def register_notifiers(self, project: Project) -> list[Any]:
        plugin = self

        class Broken:
            name = "broken-pager"

            def notify(self, alert: Alert) -> None:
                if plugin.down:
                    raise ConnectionError("pager is down")
                plugin.late.append(alert)

        class Pager:
            name = "pager"

            def notify(self, alert: Alert) -> None:
                plugin.paged.append(alert)

        return [Broken(), Pager()]


def test_hook_register_alert_rules(tmp_path: Path) -> None:
    project = make_project(tmp_path, Paging())
    # the plugin's rules, then the schedule, monitor and respond built-ins'
    assert [r.name for r in respond.list_rules(project)] == [
        "slo-page", "slo-ticket", "schedule-failed", "data-quality", "model-quality",
        "model-drift", "guard-block-spike", "load-failed", "artifact-integrity",
        "serving-errors", "serving-latency", "slo-burn", "runbook-failed", "prometheus-alert",
    ]  # fmt: skip
    project.emit(Signal(source="slo", type="budget_burn", severity="warning", subject="api"))
    (ticket,) = project.records.list(Alert)
    assert (ticket.rule, ticket.subject) == ("slo-ticket", "api")
    assert project.records.list(Incident) == []  # slo-ticket opens no incident
    page = project.emit(
        Signal(source="slo", type="budget_burn", severity="critical", subject="api")
    )
    alerts = {a.rule: a for a in project.records.list(Alert)[1:]}
    assert set(alerts) == {"slo-page", "slo-ticket"}
    assert alerts["slo-page"].signal_ids == [page.id]
    assert alerts["slo-page"].runbook == "drift-triage"
    (incident,) = project.records.list(Incident)
    assert incident.alert_ids == [alerts["slo-page"].id]


def test_hook_register_notifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plugin = Paging()
    project = make_project(tmp_path, plugin)
    project.emit(Signal(source="slo", type="budget_burn", severity="critical", subject="api"))
    assert [a.rule for a in plugin.paged] == ["slo-page", "slo-ticket"]
    assert plugin.paged == project.records.list(Alert)
    # The broken notifier is reported and does not stop the next one; its alerts wait in
    # the outbox (the second behind the first, so order is kept) until it is back.
    err = capsys.readouterr().err
    assert err.count("notifier 'broken-pager' failed: ConnectionError: pager is down") == 1
    waiting = notify.outbox(project).rows()
    assert [(r.notifier, r.status) for r in waiting] == [("broken-pager", "pending")] * 2
    plugin.down = False
    result = notify.drain(project, force=True)
    assert [a.rule for a in plugin.late] == ["slo-page", "slo-ticket"]
    assert result.delivered == [r.key for r in waiting]
    assert notify.outbox(project).rows() == []


class MemoryType:
    """A plugin's notifier type: ``[respond.notify.<name>] type = "memory"``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Notification, str]] = []

    @hookimpl
    def register_notifier_types(self, project: Project) -> list[NotifierType]:
        from pydantic import BaseModel, ConfigDict

        class Settings(BaseModel):
            model_config = ConfigDict(extra="forbid")
            label: str

        sink = self

        class Memory:
            def __init__(self, name: str, settings: Settings) -> None:
                self.name, self.settings = name, settings

            def deliver(self, notification: Notification, key: str) -> None:
                sink.sent.append((self.settings.label, notification, key))

        return [NotifierType("memory", Settings, lambda name, s, p: Memory(name, s))]


def test_hook_register_notifier_types(tmp_path: Path) -> None:
    plugin = MemoryType()
    config = textwrap.dedent("""
        [respond.notify.desk]
        type = "memory"
        label = "ops desk"
        severities = ["critical"]
    """)
    project = make_project(tmp_path, plugin, config=config)
    assert {"webhook", "slack", "pagerduty", "email", "memory"} <= set(
        notify.notifier_types(project)
    )
    project.emit(Signal(source="m", type="drift", severity="warning", subject="a"))
    assert plugin.sent == []  # below the notifier's severities
    project.emit(Signal(source="m", type="drift", severity="critical", subject="b"))
    ((label, sent, key),) = plugin.sent
    (incident,) = [i for i in project.records.list(Incident) if i.subject == "b"]
    assert (label, sent.event, sent.incident_id) == ("ops desk", "incident.open", incident.id)
    assert key == f"desk:{incident.id}"
    # A type no plugin provides, or a key its settings model does not know: one line at open.
    bad = config.replace('"memory"', '"memroy"')
    with pytest.raises(ConfigError, match=r"respond\.notify\.desk\.type' is 'memroy'.*'memory'"):
        make_project(tmp_path / "bad", plugin, config=bad)
    with pytest.raises(ConfigError, match=r"unknown key 'respond\.notify\.desk\.colour'"):
        make_project(tmp_path / "bad2", plugin, config=config + 'colour = "red"\n')


# =============================================================================== runbooks
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(path: Path, params: str, *cells: str) -> Path:
    """A minimal runbook notebook: a tagged parameters cell and code cells."""

    def cell(source: str, tags: list[str]) -> dict[str, Any]:
        meta = {"tags": tags}
        return {"cell_type": "code", "metadata": meta, "source": source,
                "outputs": [], "execution_count": None}  # fmt: skip

    heading = {"cell_type": "markdown", "metadata": {}, "source": "# Check the hooks"}
    nb = {
        "cells": [heading, cell(params, ["parameters"])] + [cell(c, []) for c in cells],
        "metadata": {"kernelspec": KERNEL},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


class Executor:
    """Runs nothing: writes the executed copy with a declared result, as papermill would.

    Registered after the built-in papermill plugin, so it is called first and answers."""

    def __init__(self, fail: str = "") -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    @hookimpl
    def execute_notebook(
        self,
        project: Project,
        input_path: Path,
        output_path: Path,
        parameters: dict[str, Any],
        timeout: float,
    ) -> Path:
        nb = json.loads(input_path.read_text(encoding="utf-8"))
        self.calls.append({"input": input_path, "output": output_path, "nb": nb,
                           "parameters": parameters, "timeout": timeout})  # fmt: skip
        result = {"summary": f"checked {parameters.get('model')}", "recommendation": "none"}
        nb["cells"][-1]["outputs"] = [{
            "output_type": "display_data", "metadata": {},
            "data": {runbooks.RESULT_MIME: result, "text/plain": "ok"},
        }]  # fmt: skip
        output_path.write_text(json.dumps(nb), encoding="utf-8")
        if self.fail:
            raise runbooks.NotebookExecutionError(self.fail)
        return output_path


class Runbooks:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def register_runbooks(self, project: Project) -> list[RunbookSpec]:
        return [
            runbooks.runbook_spec(self.folder / "check-model.ipynb"),
            RunbookSpec(name="drift-triage", path=self.folder / "drift-triage.ipynb",
                        summary="our own triage"),
        ]  # fmt: skip

    @hookimpl
    def before_runbook(
        self, project: Project, runbook: RunbookSpec, parameters: dict[str, Any]
    ) -> None:
        self.calls.append(("before_runbook", (runbook.name, parameters)))
        if parameters.get("model") == "frozen":
            raise OpsloopError("runbooks on 'frozen' need an approval")

    @hookimpl
    def after_runbook(self, project: Project, run: RunbookRun) -> None:
        stored = project.records.get(run.id) == run
        self.calls.append(("after_runbook", (run, stored)))


PARAMS = 'model: str = "m"  # the model to check\napi_token: str = ""  # secret\n'


@pytest.fixture
def runbook_project(tmp_path: Path) -> tuple[Project, Runbooks, Executor]:
    folder = tmp_path / "library"
    write_notebook(folder / "check-model.ipynb", PARAMS, "print(model)")
    write_notebook(folder / "drift-triage.ipynb", "incident_id: str = ''\n", "pass")
    plugin, executor = Runbooks(folder), Executor()
    project = make_project(tmp_path / "project", plugin, executor)
    return project, plugin, executor


def test_hook_register_runbooks(runbook_project: tuple[Project, Runbooks, Executor]) -> None:
    project, plugin, _ = runbook_project
    found = {s.name: s for s in runbooks.list_runbooks(project)}
    assert found["check-model"].summary == "Check the hooks"
    # The plugin is called before the built-in papermill plugin: its drift-triage wins.
    assert found["drift-triage"].path == plugin.folder / "drift-triage.ipynb"
    (shadow,) = project.shadowed("register_runbooks")
    assert (shadow.kept_from, shadow.dropped_from) == ("Runbooks", "papermill")
    run = runbooks.run_runbook(project, "check-model", {"model": "churn"})
    assert run.input_path == str(plugin.folder / "check-model.ipynb")
    with pytest.raises(OpsloopError, match="did you mean 'check-model'"):
        runbooks.run_runbook(project, "check-modle")


def test_hook_execute_notebook(runbook_project: tuple[Project, Runbooks, Executor]) -> None:
    project, _, executor = runbook_project
    run = runbooks.run_runbook(
        project, "check-model", {"model": "churn", "api_token": "tok-123456"}, timeout=42
    )
    (call,) = executor.calls
    assert call["parameters"] == {"model": "churn"}  # secrets reach the kernel's env only
    assert call["timeout"] == 42.0
    assert call["nb"]["metadata"]["opsloop"]["run"]["id"] == run.id  # the prepared copy
    assert call["input"] != call["output"] and call["output"].parent == Path(run.output_path).parent
    assert run.status == "succeeded" and run.output_path.endswith(f"check-model/{run.id}.ipynb")
    assert Path(run.output_path).is_file() and not call["output"].exists()  # renamed when done
    assert run.result == {"summary": "checked churn", "recommendation": "none"}
    assert "tok-123456" not in Path(run.output_path).read_text()
    executor.fail = "cell 2 raised KeyError: 'x'"
    failed = runbooks.run_runbook(project, "check-model", {})
    assert (failed.status, failed.error) == ("failed", "cell 2 raised KeyError: 'x'")
    assert failed.output_path.endswith(f"{failed.id}.failed.ipynb")


def test_hook_before_runbook(runbook_project: tuple[Project, Runbooks, Executor]) -> None:
    project, plugin, executor = runbook_project
    runbooks.run_runbook(project, "check-model", {"model": "churn", "api_token": "tok-123456"})
    assert plugin.calls[0] == (
        "before_runbook", ("check-model", {"model": "churn", "api_token": REDACTED}),
    )  # fmt: skip
    with pytest.raises(OpsloopError, match="need an approval"):
        runbooks.run_runbook(project, "check-model", {"model": "frozen"})
    assert len(executor.calls) == 1  # refused: nothing ran
    assert len(project.records.list(RunbookRun)) == 1 and actions(project) == ["runbook.run"]


def test_hook_after_runbook(runbook_project: tuple[Project, Runbooks, Executor]) -> None:
    project, plugin, executor = runbook_project
    ok = runbooks.run_runbook(project, "check-model", {"model": "churn"})
    executor.fail = "kernel died"
    failed = runbooks.run_runbook(project, "check-model", {"model": "churn"})
    after = [c[1] for c in plugin.calls if c[0] == "after_runbook"]
    assert after == [(ok, True), (failed, True)]  # failed runs included, stored first
    assert (failed.status, failed.error) == ("failed", "kernel died")

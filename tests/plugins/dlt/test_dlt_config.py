"""Config-declared sources, settings errors, doctor checks, conformance, offline behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import opsloop_dlt.plugin
import pytest
from dlt_plugin_testdata import write_csv

from opsloop.errors import ConfigError
from opsloop.interfaces import CheckResult, SourceSpec
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.testing import assert_plugin_conforms

CONFIG = """
[plugin.dlt]
sources = [
  {name = "sales", path = "landing/sales", write_disposition = "merge", primary_key = ["id"]},
  {name = "events", path = "/data/events", glob = "*.tsv", delimiter = "\\t", dataset = "bronze"},
]
"""


def sources(project: Project) -> list[SourceSpec]:
    return [s for group in project.hook.register_sources(project=project) for s in group]


def test_sources_declared_in_config(make_project: Callable[..., Project]) -> None:
    project = make_project(CONFIG)
    sales, events = sources(project)
    assert sales == SourceSpec(
        name="sales",
        kind="landing_files",
        options={
            "path": str(project.root / "landing" / "sales"),
            "glob": "*.csv",
            "delimiter": ",",
            "encoding": "utf-8",
        },
        dataset="raw",
        write_disposition="merge",
        primary_key=("id",),
    )
    assert events.options["path"] == "/data/events" and events.options["delimiter"] == "\t"
    assert events.dataset == "bronze"

    write_csv(project.root / "landing" / "sales" / "d1.csv", ["id", "qty"], [[1, 5], [1, 6]])
    record = project.hook.load_source(project=project, source=sales)
    assert record.rows == 2  # merge deduplicates by key inside the load
    data = project.hook.read_dataset(project=project, table="sales", dataset="raw")
    assert len(data.frame) == 1


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ("sourcez = []", r"unknown key 'plugin\.dlt\.sourcez'"),
        (
            'sources = [{name = "a", path = "x", colour = "red"}]',
            r"plugin\.dlt\.sources\.0\.colour",
        ),
        ('sources = [{name = "a", path = "x", write_disposition = "upsert"}]', "write_disposition"),
        (
            'sources = [{name = "a", path = "x", write_disposition = "merge"}]',
            "needs 'primary_key'",
        ),
        ('sources = [{name = "a"}]', "needs 'path'"),
        ('sources = [{name = "a b", path = "x"}]', r"plugin\.dlt\.sources\.0\.name"),
        ('sources = [{name = "a", path = "x"}, {name = "a", path = "y"}]', "declared twice"),
        ("csv_chunk_rows = 0", "csv_chunk_rows"),
    ],
)
def test_bad_settings_are_one_line_config_errors(
    make_project: Callable[..., Project], table: str, match: str
) -> None:
    project = make_project(f"[plugin.dlt]\n{table}\n")
    with pytest.raises(ConfigError, match=match) as err:
        sources(project)
    assert "\n" not in str(err.value) and "opsloop.toml" in str(err.value)


def test_settings_errors_never_echo_credentials(make_project: Callable[..., Project]) -> None:
    secret = "postgresql://loader:hunter2@127.0.0.1:5432/shop"
    project = make_project(
        f'[plugin.dlt]\nsources = [{{name = "o", kind = "sql", credentials = "{secret}"}}]\n'
    )
    with pytest.raises(ConfigError, match="needs 'table'") as err:
        sources(project)
    assert "hunter2" not in str(err.value)


def test_settings_are_checked_when_registered_under_the_module_name(tmp_path: Path) -> None:
    """make_manager registers the module under its __name__: the plugin validates itself."""
    (tmp_path / "opsloop.toml").write_text("[plugin.dlt]\nsourcez = []\n")
    project = Project.open(tmp_path, plugins=make_manager(opsloop_dlt.plugin), environ={})
    with pytest.raises(ConfigError, match=r"unknown key 'plugin\.dlt\.sourcez'"):
        sources(project)


def test_plugin_conforms(tmp_path: Path) -> None:
    assert_plugin_conforms(opsloop_dlt.plugin, tmp_path)


def test_doctor_checks(make_project: Callable[..., Project]) -> None:
    project = make_project(CONFIG)
    results = [r for group in project.hook.register_checks(project=project) for r in group]
    mine = {r.name: r for r in results if isinstance(r, CheckResult) and r.plugin == "dlt"}
    assert set(mine) == {"dlt importable", "dlt settings", "warehouse writable"}
    assert all(r.ok for r in mine.values()), mine
    assert "telemetry off" in mine["dlt importable"].detail
    assert mine["dlt settings"].detail == "2 source(s) declared"
    assert mine["warehouse writable"].detail == str(project.warehouse_path)

    broken = make_project("[plugin.dlt]\nsourcez = []\n")
    results = [r for group in broken.hook.register_checks(project=broken) for r in group]
    settings = next(r for r in results if r.name == "dlt settings")
    assert not settings.ok and "sourcez" in settings.detail


def test_telemetry_is_off_and_nothing_is_written_outside_the_project(tmp_path: Path) -> None:
    """A fresh interpreter, even with telemetry switched on in the environment: no socket to
    anything but loopback, dlt's telemetry setting resolves to False, HOME and cwd stay empty."""
    home, cwd, root = tmp_path / "home", tmp_path / "cwd", tmp_path / "project"
    for folder in (home, cwd):
        folder.mkdir()
    write_csv(root / "landing" / "d1.csv", ["id"], [[1], [2]])
    (root / "opsloop.toml").write_text('[project]\nname = "p"\n', encoding="utf-8")
    script = textwrap.dedent(
        """
        import json, socket, sys
        calls = []
        real_connect = socket.socket.connect
        def connect(self, address):
            calls.append(repr(address))
            return real_connect(self, address)
        socket.socket.connect = connect
        real_getaddrinfo = socket.getaddrinfo
        def getaddrinfo(host, *args, **kwargs):
            calls.append(f"dns:{host}")
            return real_getaddrinfo(host, *args, **kwargs)
        socket.getaddrinfo = getaddrinfo

        import opsloop_dlt.plugin as plugin
        from opsloop.interfaces import SourceSpec
        from opsloop.plugins import PluginManager
        from opsloop.project import Project

        manager = PluginManager(load_entrypoints=False, environ={}).load()
        manager.register(plugin, name="dlt")
        project = Project.open(sys.argv[1], plugins=manager, environ={})
        source = SourceSpec(name="s", kind="landing_files", options={"path": "landing"})
        record = project.hook.load_source(project=project, source=source)

        import dlt
        from dlt.common.runtime import anon_tracker
        print(json.dumps({
            "rows": record.rows,
            "telemetry": dlt.current.run_context().runtime_config.dlthub_telemetry,
            "tracker": anon_tracker._ANON_TRACKER_ENDPOINT,
            "calls": calls,
        }))
        """
    )
    env = {**os.environ, "HOME": str(home), "RUNTIME__DLTHUB_TELEMETRY": "true"}
    env.pop("DLT_DATA_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", script, str(root)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["rows"] == 2
    assert report["telemetry"] is False
    assert report["tracker"] is None
    assert report["calls"] == []
    assert list(home.iterdir()) == [] and list(cwd.iterdir()) == []
    assert (root / ".opsloop" / "dlt" / "pipelines" / "opsloop_s" / "state.json").is_file()

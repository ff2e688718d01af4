"""`opsloop demo` end to end, as a person runs it: a real process, real components, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsloop.project import Project
from opsloop.records import (
    Alert,
    Incident,
    IncidentUpdate,
    LoadRecord,
    ModelVersionRef,
    ProfileRecord,
    RunbookRun,
    Signal,
)

NO_NETWORK = textwrap.dedent(
    """
    # Installed by the e2e test: refuse and log any connection or lookup off loopback.
    import os, socket

    _LOG = os.environ["OPSLOOP_NET_LOG"]
    _LOCAL = ("127.", "::1", "localhost", "0.0.0.0")

    def _local(host):
        return host is None or str(host).startswith(_LOCAL)

    def _refuse(host):
        with open(_LOG, "a") as fh:
            fh.write(f"{os.getpid()} {host}\\n")
        raise OSError(f"network disabled by the opsloop offline test: {host}")

    _connect, _connect_ex, _getaddrinfo = (
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(address[0])
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
            _refuse(address[0])
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            _refuse(host)
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = (
        connect, connect_ex, getaddrinfo)
    """
)


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str], Path]:
    root = tmp_path_factory.mktemp("e2e")
    guard_dir = root / "offline"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(NO_NETWORK)
    net_log = root / "network.log"
    home = root / "home"  # a fresh $HOME: nothing may be written or read there by accident
    home.mkdir()
    project = root / "demo"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(guard_dir), os.environ.get("PYTHONPATH")])),
        "OPSLOOP_NET_LOG": str(net_log),
        "HOME": str(home),
        "COLUMNS": "200",
    }
    out = subprocess.run(
        [sys.executable, "-c", "from opsloop.cli import main; main()", "demo", str(project)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return project, out, net_log


def test_demo_exits_zero_with_a_summary(
    demo: tuple[Path, subprocess.CompletedProcess[str], Path],
) -> None:
    _project, out, _ = demo
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for step in ("ingest", "train and register", "serve", "monitor", "guard", "respond"):
        assert f"✓ {step}:" in out.stdout
    assert "opsloop demo: summary" in out.stdout and "chain intact" in out.stdout


def test_demo_made_no_network_call(
    demo: tuple[Path, subprocess.CompletedProcess[str], Path],
) -> None:
    _, _out, net_log = demo
    attempts = net_log.read_text() if net_log.exists() else ""
    assert attempts == "", f"network calls attempted:\n{attempts}"


def test_demo_home_is_private(
    demo: tuple[Path, subprocess.CompletedProcess[str], Path],
) -> None:
    """Records, MLflow store, warehouse, prediction log, notebooks: nobody else can read."""
    root, _out, _ = demo
    home = root / ".opsloop"
    paths = [home, *home.rglob("*")]
    names = {p.name for p in paths}
    assert {"records.sqlite", "audit.jsonl", "warehouse.duckdb"} <= names
    assert any(p.suffix == ".ipynb" for p in paths)  # an executed runbook
    loose = {
        str(p.relative_to(home)): oct(p.stat().st_mode & 0o777)
        for p in paths
        if not p.is_symlink() and p.stat().st_mode & 0o077
    }
    assert not loose
    assert home.stat().st_mode & 0o777 == 0o700


def test_demo_records_tell_the_whole_story(
    demo: tuple[Path, subprocess.CompletedProcess[str], Path],
) -> None:
    root, _out, _ = demo
    project = Project.open(root, environ={})
    try:
        loads = project.records.list(LoadRecord)
        assert [load.status for load in loads] == ["loaded", "empty"]
        assert loads[0].rows == 400 and loads[0].load_ids and loads[1].rows == 0
        (model,) = project.records.list(ModelVersionRef)
        assert model.load_ids == loads[0].load_ids  # lineage: model -> training loads
        drift = [s for s in project.records.list(Signal) if s.type == "drift"]
        assert len(drift) == 1 and drift[0].subject == "breast-cancer"
        # checked against the profile stored when the version was registered
        (profile,) = project.records.list(ProfileRecord)
        assert (profile.model, profile.version, profile.rows) == ("breast-cancer", "1", 400)
        assert drift[0].data["detector"] == "profile"
        assert drift[0].data["profile_id"] == profile.profile_id
        assert drift[0].data["features"][0]["effect"]  # effect sizes beside the p-values
        blocks = [s for s in project.records.list(Signal) if s.type == "guard_block"]
        assert len(blocks) == 1 and "jane.doe" not in blocks[0].to_json()
        (alert,) = project.records.list(Alert)
        assert alert.signal_ids == [drift[0].id] and alert.runbook == "drift-triage"
        (incident,) = project.records.list(Incident)
        assert incident.alert_ids == [alert.id]
        (run,) = project.records.list(RunbookRun)
        assert run.status == "succeeded" and run.incident_id == incident.id
        assert run.parameters["incident_id"] == incident.id
        links = [u for u in project.records.list(IncidentUpdate) if u.runbook_run_id == run.id]
        assert links and links[0].incident_id == incident.id
        executed = json.loads(Path(run.output_path).read_text())
        assert Path(run.output_path).is_relative_to(project.home)
        outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
                   for o in outputs), "the triage notebook draws a chart"  # fmt: skip
        verdict = project.verify_audit()  # the chain, keyed, and every record against it
        assert verdict.ok and verdict.log_id and verdict.unkeyed == 0, verdict.describe()
        actions = [e["action"] for e in project.audit.entries()]
        for action in ("ingest.load", "model.register", "monitor.profile", "model.alias",
                       "serve.start", "alert.fire", "incident.open", "runbook.run"):  # fmt: skip
            assert action in actions, action
    finally:
        project.close()

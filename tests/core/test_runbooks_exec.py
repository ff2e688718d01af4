"""The runbook engine with real papermill runs: success, a failing cell, a dead kernel, a
hung cell, secrets that never reach the disk, and the shipped drift-triage runbook."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from opsloop import hookimpl
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import Alert, Incident, IncidentUpdate, RunbookRun, Signal
from opsloop.runbooks import SECRETS_FILE_ENV, run_runbook

pytestmark = pytest.mark.slow


def write_runbook(
    root: Path, name: str, params: str, *cells: str, meta: dict[str, Any] | None = None
) -> Path:
    nb = new_notebook()
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if meta:
        nb.metadata["opsloop"] = meta
    path = root / "notebooks" / "runbooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


class Recorder:
    """A plugin that records the runbook hooks it sees."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def before_runbook(self, runbook: Any, parameters: dict[str, Any]) -> None:
        self.calls.append(("before", (runbook.name, parameters)))

    @hookimpl
    def after_runbook(self, run: RunbookRun) -> None:
        self.calls.append(("after", run))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "t"\n')
    return Project.open(tmp_path, plugins=make_manager())


def outputs_text(path: Path) -> str:
    """Every text output of an executed notebook, joined."""
    nb = json.loads(path.read_text())
    parts: list[str] = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                parts.append("".join(out["text"]))
            elif "data" in out:
                data = out["data"]
                parts.append("".join(data.get("text/markdown", data.get("text/plain", ""))))
            elif out["output_type"] == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def make_incident(project: Project, signal: Signal) -> Incident:
    """An incident opened from one alert on ``signal``, all written through project.emit."""
    project.emit(signal)
    alert = Alert(
        rule="model-drift",
        severity=signal.severity,
        summary=signal.summary,
        signal_ids=[signal.id],
        subject=signal.subject,
        runbook="drift-triage",
    )
    project.emit(alert)
    incident = Incident(
        title=f"drift on {signal.subject}",
        severity=signal.severity,
        alert_ids=[alert.id],
        subject=signal.subject,
    )
    project.emit(incident)
    return incident


def test_successful_run_writes_notebook_record_audit_and_incident_update(
    project: Project,
) -> None:
    recorder = Recorder()
    project.plugins.register(recorder, name="recorder")
    path = write_runbook(
        project.root,
        "double",
        "window: int = 7  # days\nfeatures: list = []\nproject_dir: str = '.'",
        "import os\nprint('double', window * 2, type(window).__name__, features)\n"
        "print('cwd', os.getcwd())\nprint('dir', project_dir)",
    )
    incident = Incident(title="slow model", severity="warning", subject="churn")
    project.emit(incident)

    run = run_runbook(
        project, "double", {"window": "21", "features": "a,b"}, incident_id=incident.id, timeout=60
    )

    assert run.status == "succeeded", run.error
    assert run.error is None
    out = project.path("runbooks", "double", f"{run.id}.ipynb")
    assert run.output_path == str(out) and out.is_file()
    text = outputs_text(out)
    assert "double 42 int ['a', 'b']" in text
    assert f"cwd {project.root}" in text and f"dir {project.root}" in text
    nb = json.loads(out.read_text())
    assert nb["metadata"]["papermill"]["input_path"] == str(path)
    assert nb["metadata"]["opsloop"]["run"]["id"] == run.id
    html = out.with_suffix(".html")  # its offline HTML copy, and no temp files left
    assert sorted(p.name for p in out.parent.iterdir()) == [html.name, out.name]
    assert run.html_path == str(html) and "double 42 int" in html.read_text()
    # the record, the audit entry, the incident update, the hooks
    stored = project.records.get(run.id)
    assert isinstance(stored, RunbookRun)
    assert stored.parameters == {
        "window": 21,
        "features": ["a", "b"],
        "project_dir": str(project.root),
    }
    assert stored.incident_id == incident.id and stored.input_path == str(path)
    assert stored.started_at < stored.finished_at
    # the run's entry, then the incident update's own (every record is audited)
    *_, entry, linked = list(project.audit.entries())
    assert (entry["action"], entry["target"]) == ("runbook.run", "double")
    assert linked["action"] == "record.incident_update"
    assert entry["after"]["run_id"] == run.id and entry["after"]["status"] == "succeeded"
    assert project.audit.verify().ok
    updates = [u for u in project.records.list(IncidentUpdate) if u.incident_id == incident.id]
    assert [u.runbook_run_id for u in updates] == [run.id]
    assert updates[0].note == "runbook double succeeded"
    assert [c[0] for c in recorder.calls] == ["before", "after"]
    assert recorder.calls[1][1].id == run.id


def test_failing_cell_is_a_failed_run_with_the_error_line(project: Project) -> None:
    write_runbook(
        project.root, "broken", "x = 1", "print('before')", "raise ValueError('no data\\nat all')"
    )
    incident = Incident(title="t", severity="warning")
    project.emit(incident)

    run = run_runbook(project, "broken", {"x": "0"}, incident_id=incident.id, timeout=60)

    assert run.status == "failed"
    assert run.error == "ValueError: no data (cell 3)"
    failed = project.path("runbooks", "broken", f"{run.id}.failed.ipynb")
    assert run.output_path == str(failed) and failed.is_file()
    assert not failed.with_name(f"{run.id}.ipynb").exists()
    assert run.html_path == str(failed.with_suffix(".html"))  # the failed run's HTML copy
    assert "ValueError" in failed.with_suffix(".html").read_text()
    assert "ValueError: no data" in outputs_text(failed)  # the person sees the failing cell
    assert isinstance(project.records.get(run.id), RunbookRun)
    [entry] = [e for e in project.audit.entries() if e["action"] == "runbook.run"]
    assert entry["after"]["status"] == "failed"
    [update] = [u for u in project.records.list(IncidentUpdate) if u.runbook_run_id]
    assert update.runbook_run_id == run.id
    assert update.note == "runbook broken failed: ValueError: no data (cell 3)"
    # a failed run is a signal too: the runbook-failed rule opens its own incident
    [failed_signal] = [s for s in project.records.list(Signal) if s.type == "runbook_failed"]
    assert failed_signal.subject == "broken" and failed_signal.data["run_id"] == run.id


def test_dead_kernel_is_a_failed_run_not_a_hang(project: Project) -> None:
    write_runbook(project.root, "crash", "x = 1", "import os\nos._exit(1)", "print('never')")
    started = time.monotonic()
    run = run_runbook(project, "crash", {}, timeout=30)
    assert time.monotonic() - started < 25
    assert run.status == "failed"
    assert run.error == "kernel died while running cell 2"
    failed = Path(run.output_path)
    assert failed.name == f"{run.id}.failed.ipynb" and failed.is_file()
    cells = json.loads(failed.read_text())["cells"]
    crashed = next(c for c in cells if "os._exit" in "".join(c["source"]))
    assert crashed["metadata"]["papermill"]["status"] == "failed"
    assert "kernel died" in outputs_text(failed)
    assert cells[-1]["metadata"]["papermill"]["status"] == "pending"


def test_hung_cell_times_out_as_a_failed_run(project: Project) -> None:
    write_runbook(project.root, "hang", "x = 1", "import time\ntime.sleep(120)", "print('never')")
    started = time.monotonic()
    run = run_runbook(project, "hang", {}, timeout=3)
    assert time.monotonic() - started < 25
    assert run.status == "failed"
    assert run.error is not None and run.error.startswith("cell 2 timed out after 3 s")
    assert Path(run.output_path).is_file()


def _home_bytes(project: Project) -> bytes:
    return b"".join(p.read_bytes() for p in project.home.rglob("*") if p.is_file())


def test_secret_parameters_reach_the_kernel_but_never_the_disk(project: Project) -> None:
    token = "sk-live-" + os.urandom(12).hex()
    dsn = "postgresql://ops:" + os.urandom(8).hex() + "@db.internal/prod"
    digest = hashlib.sha256((token + dsn).encode()).hexdigest()
    write_runbook(
        project.root,
        "rotate",
        'api_token: str = None  # the vendor token\nwarehouse: str = ""\nexpected: str = ""',
        "import hashlib\n"
        "assert hashlib.sha256((api_token + warehouse).encode()).hexdigest() == expected\n"
        "print('token length', len(api_token))\n"
        "print('careless print of', api_token, warehouse)",
        "import os\nprint('leftover', [k for k in os.environ if k.startswith('OPSLOOP_SECRET')])",
        meta={"secret_parameters": ["warehouse"]},
    )

    run = run_runbook(
        project, "rotate", {"api_token": token, "warehouse": dsn, "expected": digest}, timeout=60
    )

    assert run.status == "succeeded", run.error
    text = outputs_text(Path(run.output_path))
    assert f"token length {len(token)}" in text  # the notebook received the real value
    assert "careless print of *** ***" in text  # and its output was scrubbed
    assert "leftover []" in text  # the kernel removed them from its environment
    assert run.parameters == {"api_token": "***", "warehouse": "***", "expected": digest}
    for secret in (token, dsn):
        assert secret.encode() not in _home_bytes(project)
    assert SECRETS_FILE_ENV not in os.environ

    # a failing run whose error message carries the secret: scrubbed in the record too
    write_runbook(
        project.root,
        "leak",
        "api_token: str = None",
        "raise RuntimeError('vendor refused ' + api_token)",
    )
    failed = run_runbook(project, "leak", {"api_token": token}, timeout=60)
    assert failed.status == "failed"
    assert failed.error == "RuntimeError: vendor refused *** (cell 2)"
    assert token.encode() not in _home_bytes(project)


def test_drift_triage_runs_on_a_real_incident(project: Project) -> None:
    report = project.root / "reports" / "drift.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>drift report</html>")
    # PSI drifts above its threshold, a K-S p-value below it: ranked by how far past it.
    measured = {
        "age": ("psi", 0.04, 0.2, False),
        "income": ("psi", 0.61, 0.2, True),
        "tenure": ("K-S p_value", 0.001, 0.05, True),
        "balance": ("K-S p_value", 0.3, 0.05, False),
        "region": ("psi", 0.93, 0.2, True),
    }
    features = [
        {"feature": f, "method": m, "statistic": s, "threshold": t, "drifted": d}
        for f, (m, s, t, d) in measured.items()
    ]
    signal = Signal(
        source="monitor.psi",
        type="drift",
        severity="critical",
        subject="churn",
        summary="3 of 5 features drifted (60%) for model 'churn'",
        value=0.6,
        threshold=0.5,
        data={
            "detector": "psi",
            "window": "2026-11-20",
            "features": features,
            "report_path": str(report),
            "lineage": {"load_ids": ["1764000000.42"], "model_version": "3"},
        },
    )
    incident = make_incident(project, signal)

    started = time.monotonic()
    run = run_runbook(project, "drift-triage", {"window": "2026-11-20"}, incident_id=incident.id)
    assert time.monotonic() - started < 30

    assert run.status == "succeeded", run.error
    assert run.parameters["incident_id"] == incident.id
    out = Path(run.output_path)
    text = outputs_text(out)
    printed, _ = json.JSONDecoder().raw_decode(text[text.index("{\n") :])
    summary = run.result  # what the runbook declared, kept on the record
    assert summary["summary"] and {k: summary[k] for k in printed} == printed
    assert summary["incident_id"] == incident.id
    assert summary["model"] == "churn"
    assert summary["signal_id"] == signal.id
    assert summary["drifted_features"] == ["tenure", "region", "income"]
    assert summary["report_path"] == str(report)
    assert summary["recommendation"] == "retrain-or-rollback"
    assert "| region | psi | 0.93 | 0.2 |" in text
    assert "| tenure | K-S p_value | 0.001 | 0.05 |" in text
    assert "1764000000.42" in text  # lineage evidence
    nb = json.loads(out.read_text())
    images = [
        o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    # the per-feature chart; with opsloop-jupyter also its drift-over-time plot
    assert len(images) == 1 + (importlib.util.find_spec("opsloop_jupyter") is not None)
    updates = [u for u in project.records.list(IncidentUpdate) if u.runbook_run_id == run.id]
    assert [u.incident_id for u in updates] == [incident.id]


def test_drift_triage_without_a_drift_signal_says_so(project: Project) -> None:
    signal = Signal(source="prometheus", type="slo_burn", subject="churn", summary="p99 latency")
    incident = make_incident(project, signal)

    run = run_runbook(project, "drift-triage", {}, incident_id=incident.id)

    assert run.status == "succeeded", run.error
    text = outputs_text(Path(run.output_path))
    assert "No drift signal for this incident" in text
    printed, _ = json.JSONDecoder().raw_decode(text[text.index("{\n") :])
    summary = run.result  # what the runbook declared, kept on the record
    assert summary["summary"] and {k: summary[k] for k in printed} == printed
    assert summary["recommendation"] == "no-drift-signal"
    assert summary["drifted_features"] == []

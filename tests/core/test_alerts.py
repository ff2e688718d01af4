"""Alert rules for every kind of failure: dedup keys, grouping, spikes, rate limits, owners,
incident timelines, runbooks run by themselves or suggested, and the Alertmanager receiver."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from opsloop import hookimpl
from opsloop.errors import IntegrityError, OpsloopError, ParameterError
from opsloop.interfaces import AlertRule, SourceSpec
from opsloop.project import Project
from opsloop.receiver import Auth, make_server, parse_webhook
from opsloop.records import Alert, Incident, IncidentUpdate, RunbookRun, Signal
from opsloop.respond import (
    assign_incident,
    incident_timeline,
    incident_view,
    list_incidents,
    update_incident,
)
from opsloop.runbooks import get_runbook
from opsloop.testing import make_project


def signal(kind: str, subject: str = "m", severity: str = "warning", **data: Any) -> Signal:
    return Signal(source="test", type=kind, severity=severity, subject=subject,  # type: ignore[arg-type]
                  summary=f"{kind} on {subject}", data=data)  # fmt: skip


def write_runbook(root: Path, name: str, code: str = "x = 1", meta: dict[str, Any] | None = None,
                  params: str = 'incident_id: str = ""') -> None:  # fmt: skip
    folder = root / "notebooks" / "runbooks"
    folder.mkdir(parents=True, exist_ok=True)
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}"), cell, new_code_cell(code)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if meta:
        nb.metadata["opsloop"] = meta
    nbformat.write(nb, folder / f"{name}.ipynb")


class Rules:
    def __init__(self, *rules: AlertRule) -> None:
        self.rules = list(rules)

    @hookimpl
    def register_alert_rules(self, project: Project) -> list[AlertRule]:
        return self.rules


def incidents(project: Project, rule: str) -> list[Incident]:
    return [i for i in project.records.list(Incident) if i.dedup_key.startswith(rule)]


# ------------------------------------------------------------------------------ rules
def test_builtin_rules_cover_every_kind_of_failure(opsloop_project: Project) -> None:
    from opsloop.respond import list_rules

    rules = {r.signal_type: r for r in list_rules(opsloop_project)}
    for kind in ("drift", "data_quality", "guard_block", "load_failed", "integrity",
                 "serving_errors", "serving_latency", "slo_burn", "runbook_failed",
                 "schedule_failed", "prometheus"):  # fmt: skip
        assert kind in rules, kind
    assert rules["guard_block"].threshold > 1 and rules["guard_block"].rate_limit
    assert rules["integrity"].runbook == "integrity-failure"
    assert rules["load_failed"].runbook == "load-failure"
    assert rules["runbook_failed"].runbook is None  # a failed runbook never starts another


def test_severity_owner_and_dedup_key_template(tmp_path: Path) -> None:
    rules = Rules(AlertRule(name="errs", signal_type="errs", severity="critical",
                            dedup_key="{rule}/{label[route]}", owner="ml-team"))  # fmt: skip
    config = '[project]\nname = "p"\n[respond]\nowners = { errs = "sre" }\n'
    project = make_project(tmp_path, rules, config=config)
    project.emit(signal("errs", "a", labels={"route": "/predict"}))
    project.emit(signal("errs", "b", labels={"route": "/predict"}))  # same key: attached
    project.emit(signal("errs", "a", labels={"route": "/batch"}))  # another key
    opened = incidents(project, "errs")
    assert [i.dedup_key for i in opened] == ["errs//predict", "errs//batch"]
    assert all(i.severity == "critical" and i.owner == "sre" for i in opened)
    assert len(incident_view(project, opened[0].id).updates) >= 1
    assert [a.severity for a in project.records.list(Alert)] == ["critical"] * 3


def test_a_bad_dedup_template_is_one_clear_error(tmp_path: Path) -> None:
    project = make_project(tmp_path, Rules(AlertRule(name="x", signal_type="x",
                                                     dedup_key="{nope}")))  # fmt: skip
    with pytest.raises(OpsloopError, match=r"dedup_key '\{nope\}' cannot be filled in"):
        project.emit(signal("x"))


def test_a_spike_not_every_signal(tmp_path: Path) -> None:
    rule = AlertRule(name="spike", signal_type="blk", threshold=3, window=600)
    project = make_project(tmp_path, Rules(rule))
    project.emit(signal("blk"))
    project.emit(signal("blk"))
    project.emit(signal("blk", subject="other"))  # another subject does not count
    assert project.records.list(Alert) == []
    project.emit(signal("blk"))
    assert len(project.records.list(Alert)) == 1 and len(incidents(project, "spike")) == 1


def test_rate_limit_suppresses_and_counts_on_the_incident(tmp_path: Path) -> None:
    rule = AlertRule(name="rl", signal_type="rl", rate_limit=(2, 3600))
    project = make_project(tmp_path, Rules(rule))
    for _ in range(5):
        project.emit(signal("rl"))
    assert len(project.records.list(Alert)) == 2
    [incident] = incidents(project, "rl")
    view = incident_view(project, incident.id)
    assert view.suppressed == 3
    from opsloop.notify import notification_for

    suppressed = [u for u in view.updates if u.suppressed]
    assert notification_for(project, suppressed[0]) is None  # nobody is paged for it


def test_grouping_window_reopens_instead_of_opening_another(tmp_path: Path) -> None:
    grouped = AlertRule(name="g", signal_type="g", group_window=3600)
    plain = AlertRule(name="p", signal_type="p")
    project = make_project(tmp_path, Rules(grouped, plain))
    for kind in ("g", "p"):
        project.emit(signal(kind))
        [first] = incidents(project, kind)
        update_incident(project, first.id, "resolved")
        project.emit(signal(kind))
    assert len(incidents(project, "g")) == 1
    assert incident_view(project, incidents(project, "g")[0].id).status == "open"
    assert len(incidents(project, "p")) == 2  # no window: a new incident


def test_assign_and_timeline(tmp_path: Path) -> None:
    project = make_project(tmp_path, Rules(AlertRule(name="t", signal_type="t", runbook="nb")))
    project.emit(signal("t"))
    [incident] = incidents(project, "t")
    assign_incident(project, incident.id, "alice")
    update_incident(project, incident.id, "acknowledged")
    view = incident_view(project, incident.id)
    assert view.owner == "alice" and view.status == "acknowledged"
    kinds = [e.what for e in incident_timeline(project, incident.id)]
    assert kinds[:2] == ["signal", "alert"] and "audit" in kinds and "update" in kinds
    texts = " | ".join(e.text for e in incident_timeline(project, incident.id))
    assert "runbook nb cannot run: no runbook named 'nb'" in texts
    assert "incident.assign" in texts and "owner alice" in texts
    with pytest.raises(OpsloopError, match="owner is empty"):
        assign_incident(project, incident.id, " ")


# ---------------------------------------------------------------------- runbooks
def test_destructive_flag_from_metadata_or_approval_parameter(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    write_runbook(tmp_path, "safe")
    write_runbook(tmp_path, "flagged", meta={"destructive": True})
    write_runbook(tmp_path, "approving", params='approved_by: str = ""')
    assert not get_runbook(project, "safe").destructive
    assert get_runbook(project, "flagged").destructive
    assert get_runbook(project, "approving").destructive


def test_non_destructive_runbook_runs_destructive_is_suggested(tmp_path: Path) -> None:
    write_runbook(tmp_path, "look", code="print(incident_id)")
    write_runbook(tmp_path, "act", meta={"destructive": True})
    rules = Rules(AlertRule(name="a", signal_type="a", runbook="look"),
                  AlertRule(name="b", signal_type="b", runbook="act"),
                  AlertRule(name="c", signal_type="c", runbook="look", auto_run=False))  # fmt: skip
    config = '[project]\nname = "p"\n[respond]\nauto_run = "inline"\n'
    project = make_project(tmp_path, rules, config=config)
    for kind in "abc":
        project.emit(signal(kind))
    [a], [b], [c] = (incidents(project, k) for k in "abc")
    [run] = project.records.list(RunbookRun)
    assert run.runbook == "look" and run.incident_id == a.id and run.status == "succeeded"
    assert incident_view(project, a.id).runbook_runs == [run.id]
    notes = {i.id: " ".join(u.note for u in incident_view(project, i.id).updates) for i in (b, c)}
    assert "runbook act suggested (destructive" in notes[b.id]
    assert f"opsloop runbook run act --incident {b.id}" in notes[b.id]
    assert "runbook look suggested" in notes[c.id]


def test_a_failed_runbook_opens_its_own_incident(tmp_path: Path) -> None:
    write_runbook(tmp_path, "broken", code="raise RuntimeError('boom')")
    config = '[project]\nname = "p"\n[respond]\nauto_run = "inline"\n'
    project = make_project(tmp_path, Rules(AlertRule(name="x", signal_type="x",
                                                     runbook="broken")), config=config)  # fmt: skip
    project.emit(signal("x"))
    [run] = project.records.list(RunbookRun)
    assert run.status == "failed"
    failed = [s for s in project.records.list(Signal) if s.type == "runbook_failed"]
    assert len(failed) == 1 and failed[0].subject == "broken"
    [incident] = incidents(project, "runbook-failed")
    assert incident.runbook is None and len(project.records.list(RunbookRun)) == 1


def test_background_run_starts_a_detached_process(tmp_path: Path) -> None:
    import time

    write_runbook(tmp_path, "look")
    config = '[project]\nname = "p"\n[respond]\nauto_run = "background"\n'
    project = make_project(tmp_path, Rules(AlertRule(name="a", signal_type="a",
                                                     runbook="look")), config=config)  # fmt: skip
    project.emit(signal("a"))
    [incident] = incidents(project, "a")
    notes = " ".join(u.note for u in incident_view(project, incident.id).updates)
    assert "runbook look started by itself (process" in notes
    deadline = time.time() + 120  # a bound on waiting, not a speed assertion
    while not incident_view(project, incident.id).runbook_runs and time.time() < deadline:
        time.sleep(0.2)
    [run] = project.records.list(RunbookRun)
    assert run.incident_id == incident.id and run.status == "succeeded"


# ----------------------------------------------------------------- signal emission
class FailingLoader:
    @hookimpl
    def load_source(self, project: Project, source: SourceSpec) -> Any:
        raise RuntimeError("contract violated: column amount missing")


def test_a_failed_load_raises_a_signal_and_an_incident(tmp_path: Path) -> None:
    from opsloop.ingest import run_load

    project = make_project(tmp_path, FailingLoader())
    source = SourceSpec(name="orders", kind="test", dataset="raw")
    with pytest.raises(RuntimeError):
        run_load(project, source)
    [sig] = [s for s in project.records.list(Signal) if s.type == "load_failed"]
    assert sig.subject == "orders" and sig.severity == "critical"
    [incident] = incidents(project, "load-failed")
    assert incident.runbook == "load-failure" and incident.severity == "critical"


class TamperedStore:
    capabilities = frozenset({"governance"})

    def verify(self, ref: Any) -> list[str]:
        return ["model.pkl changed"]


def test_a_tampered_artifact_raises_a_critical_incident(opsloop_project: Project) -> None:
    from opsloop.records import ModelVersionRef
    from opsloop.registry.access import check_integrity

    ref = ModelVersionRef(name="fraud", version="3", uri="file:///x", store="test")
    with pytest.raises(IntegrityError):
        check_integrity(opsloop_project, TamperedStore(), ref)  # type: ignore[arg-type]
    [incident] = incidents(opsloop_project, "artifact-integrity")
    assert incident.subject == "fraud" and incident.severity == "critical"
    assert incident.runbook == "integrity-failure"


# ------------------------------------------------------------------ Alertmanager
def webhook(status: str, **labels: str) -> dict[str, Any]:
    labels = {"alertname": "OpsloopAvailabilityBurnRate", "model": "fraud",
              "severity": "page", "slo": "availability", **labels}  # fmt: skip
    return {
        "version": "4", "status": status, "receiver": "opsloop", "groupKey": "{}:{}",
        "alerts": [{"status": status, "labels": labels,
                    "annotations": {"summary": "fraud: availability budget burning"},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": "abc123"}],
    }  # fmt: skip


def test_parse_webhook_reads_version_4_and_names_bad_input() -> None:
    [alert] = parse_webhook(webhook("firing"))
    assert alert.signal.type == "slo_burn" and alert.signal.severity == "critical"
    assert alert.signal.subject == "fraud" and alert.fingerprint == "abc123"
    [other] = parse_webhook(webhook("firing", alertname="Custom", signal="serving_errors"))
    assert other.signal.type == "serving_errors"
    with pytest.raises(ParameterError, match="version '3' is not supported"):
        parse_webhook({**webhook("firing"), "version": "3"})
    with pytest.raises(ParameterError, match="'alerts' is missing"):
        parse_webhook({"version": "4"})
    bad = webhook("firing")
    bad["alerts"][0]["status"] = "odd"
    with pytest.raises(ParameterError, match="alert number 1 has status 'odd'"):
        parse_webhook(bad)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[Project, str]]:
    project = make_project(tmp_path)
    server = make_server(project, "127.0.0.1", 0, Auth(token="s3cret", user="am", password="pw"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield project, f"http://127.0.0.1:{server.server_address[1]}/alertmanager"
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: Any, auth: str | None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    if auth:
        request.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_receiver_opens_and_resolves_with_auth(receiver: tuple[Project, str]) -> None:
    project, url = receiver
    assert post(url, webhook("firing"), None)[0] == 401
    assert post(url, webhook("firing"), "Bearer wrong")[0] == 401
    status, body = post(url, b"{not json", "Bearer s3cret")
    assert status == 400 and body["error"] == "webhook: the body is not JSON"
    status, body = post(url, webhook("firing"), "Bearer s3cret")
    assert status == 200 and body["firing"] == 1 and len(body["incidents"]) == 1
    [incident] = list_incidents(project, open_only=True)
    assert body["incidents"] == [incident.incident.id]
    assert incident.incident.severity == "critical" and incident.incident.runbook == "rollback"
    basic = "Basic " + base64.b64encode(b"am:pw").decode()
    assert post(url, webhook("firing"), basic)[1]["incidents"] == [incident.incident.id]
    status, body = post(url, webhook("resolved"), basic)
    assert status == 200 and body["resolved_incidents"] == [incident.incident.id]
    assert incident_view(project, incident.incident.id).status == "resolved"
    resolved = [u for u in project.records.list(IncidentUpdate) if u.status == "resolved"]
    assert "resolved by Alertmanager (alert abc123 ended)" in resolved[0].note


# ------------------------------------------------------------------------------ CLI
def cli(root: Path, *args: str) -> Any:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "UNSET_TOKEN_VAR"}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from opsloop.cli import main; sys.exit(main())",
         "--project", str(root), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_cli_assign_show_and_serve_errors(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.emit(signal("load_failed", "orders", severity="critical"))
    [incident] = incidents(project, "load-failed")
    project.close()
    done = cli(tmp_path, "incident", "assign", incident.id, "data-eng")
    assert done.returncode == 0, done.stderr
    shown = cli(tmp_path, "incident", "show", incident.id, "--json")
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["owner"] == "data-eng" and body["status"] == "open"
    assert [e["what"] for e in body["timeline"]][:2] == ["signal", "alert"]
    assert any("incident.assign" in e["text"] for e in body["timeline"])
    bad = cli(tmp_path, "respond", "serve", "--port", "0", "--token-env", "UNSET_TOKEN_VAR")
    assert bad.returncode == 2
    assert "environment variable 'UNSET_TOKEN_VAR' is not set or empty" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

"""The respond stage: signals -> alert rules -> alerts -> incidents, and incident state.

Records are never rewritten: an incident's status is the newest IncidentUpdate's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
from opsloop.records import SEVERITIES, Alert, Incident, IncidentUpdate, RunbookRun, Signal

if TYPE_CHECKING:
    from opsloop.interfaces import AlertRule, Notifier
    from opsloop.project import Project

OPEN_STATES = ("open", "acknowledged", "mitigated")


@dataclass
class IncidentView:
    """An incident with its state folded from its updates."""

    incident: Incident
    status: str
    updates: list[IncidentUpdate] = field(default_factory=list)
    runbook_runs: list[str] = field(default_factory=list)


def list_rules(project: Project) -> list[AlertRule]:
    """Every alert rule plugins register (one per name: see opsloop.registrations)."""
    return project.collect("register_alert_rules")


def list_notifiers(project: Project) -> list[Notifier]:
    """Every notifier plugins register (one per name: see opsloop.registrations)."""
    return project.collect("register_notifiers")


def _matches(rule: AlertRule, signal: Signal) -> bool:
    return (
        rule.signal_type == signal.type
        and SEVERITIES.index(signal.severity) >= SEVERITIES.index(rule.min_severity)
        and (rule.subject is None or rule.subject == signal.subject)
    )


def incident_view(project: Project, incident_id: str) -> IncidentView:
    record = project.records.get(incident_id)
    if not isinstance(record, Incident):
        raise OpsloopError(f"'{incident_id}' is a {record.kind}, not an incident")
    updates = [u for u in project.records.list(IncidentUpdate) if u.incident_id == incident_id]
    status = "open"
    for update in updates:
        if update.status:
            status = update.status
    runs = [u.runbook_run_id for u in updates if u.runbook_run_id]
    return IncidentView(record, status, updates, runs)


def list_incidents(project: Project, *, open_only: bool = False) -> list[IncidentView]:
    views = [incident_view(project, i.id) for i in project.records.list(Incident)]
    return [v for v in views if v.status in OPEN_STATES] if open_only else views


def _open_incident_for(project: Project, rule: str, subject: str) -> IncidentView | None:
    for view in reversed(list_incidents(project, open_only=True)):
        alerts = [project.records.get(a) for a in view.incident.alert_ids]
        if view.incident.subject == subject and any(
            isinstance(a, Alert) and a.rule == rule for a in alerts
        ):
            return view
    return None


def evaluate_signal(project: Project, signal: Signal) -> list[Alert]:
    """Apply every alert rule to ``signal``: emit alerts, open or extend incidents."""
    list_notifiers(project)  # a plugin that cannot register its notifiers fails here, loudly
    alerts: list[Alert] = []
    for rule in list_rules(project):
        if not _matches(rule, signal):
            continue
        alert = Alert(
            rule=rule.name,
            severity=signal.severity,
            summary=signal.summary,
            signal_ids=[signal.id],
            subject=signal.subject,
            runbook=rule.runbook,
        )
        project.emit(alert)
        project.audit.append(
            "alert.fire", alert.id, after={"rule": rule.name, "signal": signal.id}, actor="opsloop"
        )
        alerts.append(alert)
        # Notifiers are told through the outbox (opsloop.notify), from the records emitted
        # here: this alert if its rule opens no incident, else the incident or its update.
        if not rule.open_incident:
            continue
        existing = _open_incident_for(project, rule.name, signal.subject)
        if existing is not None:
            project.emit(
                IncidentUpdate(incident_id=existing.incident.id, note=f"alert {alert.id} attached")
            )
            continue
        incident = Incident(
            title=signal.summary or f"{rule.name} on {signal.subject}",
            severity=signal.severity,
            alert_ids=[alert.id],
            subject=signal.subject,
        )
        project.emit(incident)
        project.audit.append(
            "incident.open", incident.id, after={"alert": alert.id}, actor="opsloop"
        )
    return alerts


def update_incident(
    project: Project, incident_id: str, status: str, note: str = ""
) -> IncidentUpdate:
    """Change an incident's status (acknowledged, mitigated, resolved, open); audited."""
    allowed = ("open", "acknowledged", "mitigated", "resolved")
    if status not in allowed:
        raise OpsloopError(f"unknown incident status '{status}'; use one of: {', '.join(allowed)}")
    view = incident_view(project, incident_id)
    update = IncidentUpdate(
        incident_id=incident_id,
        status=status,  # type: ignore[arg-type]
        note=note,
        actor=project.audit.actor,
    )
    project.emit(update)
    project.audit.append(
        "incident.update", incident_id, before={"status": view.status}, after={"status": status}
    )
    return update


def runbook_runs_for(project: Project, incident_id: str) -> list[RunbookRun]:
    return [r for r in project.records.list(RunbookRun) if r.incident_id == incident_id]

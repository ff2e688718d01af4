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


def dedup_key(rule: str, subject: str) -> str:
    """The key that allows one open incident per alert rule and subject."""
    return f"{rule}\x1f{subject}"


def _incident_key(project: Project, incident: Incident) -> str:
    if incident.dedup_key:
        return incident.dedup_key
    alerts = [project.records.get(a) for a in incident.alert_ids]
    rules = [a.rule for a in alerts if isinstance(a, Alert)]
    return dedup_key(rules[0], incident.subject) if rules else ""


def _index_open_incidents(project: Project) -> None:
    """Fill the store's open-incident index once, for incidents opened before it existed.

    Call inside a record-store transaction."""
    db = project.records._db
    if project.records.meta("open_incidents_indexed"):
        return
    for view in list_incidents(project, open_only=True):
        key = _incident_key(project, view.incident)
        if key:
            db.execute(
                "INSERT OR IGNORE INTO open_incidents (dedup_key, incident_id) VALUES (?, ?)",
                (key, view.incident.id),
            )
    db.execute("INSERT INTO store_meta (key, value) VALUES ('open_incidents_indexed', '1')")


def _open_or_attach(project: Project, rule: str, signal: Signal, alert: Alert) -> None:
    """Open an incident for (rule, subject), or attach the alert to the open one.

    Atomic across processes: the lookup and the insert run in one BEGIN IMMEDIATE
    transaction, and the store's ``open_incidents`` table (primary key: the dedup key)
    refuses a second open incident for the same key.
    """
    key = dedup_key(rule, signal.subject)
    with project.records.transaction() as db:
        _index_open_incidents(project)
        row = db.execute(
            "SELECT incident_id FROM open_incidents WHERE dedup_key = ?", (key,)
        ).fetchone()
        if row is not None:
            project.emit(
                IncidentUpdate(incident_id=row[0], note=f"alert {alert.id} attached"),
                "incident.attach",
                row[0],
                after={"alert": alert.id},
                actor="opsloop",
            )
            return
        incident = Incident(
            title=signal.summary or f"{rule} on {signal.subject}",
            severity=signal.severity,
            alert_ids=[alert.id],
            subject=signal.subject,
            dedup_key=key,
        )
        db.execute(
            "INSERT INTO open_incidents (dedup_key, incident_id) VALUES (?, ?)",
            (key, incident.id),
        )
        project.emit(
            incident, "incident.open", incident.id, after={"alert": alert.id}, actor="opsloop"
        )


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
        project.emit(
            alert, "alert.fire", alert.id, after={"rule": rule.name, "signal": signal.id},
            actor="opsloop",
        )  # fmt: skip
        alerts.append(alert)
        # Notifiers are told through the outbox (opsloop.notify), from the records emitted
        # here: this alert if its rule opens no incident, else the incident or its update.
        if rule.open_incident:
            _open_or_attach(project, rule.name, signal, alert)
    return alerts


def update_incident(
    project: Project, incident_id: str, status: str, note: str = ""
) -> IncidentUpdate:
    """Change an incident's status (acknowledged, mitigated, resolved, open); audited."""
    allowed = ("open", "acknowledged", "mitigated", "resolved")
    if status not in allowed:
        raise OpsloopError(f"unknown incident status '{status}'; use one of: {', '.join(allowed)}")
    with project.records.transaction() as db:
        _index_open_incidents(project)
        view = incident_view(project, incident_id)
        update = IncidentUpdate(
            incident_id=incident_id,
            status=status,  # type: ignore[arg-type]
            note=note,
            actor=project.audit.actor,
        )
        key = _incident_key(project, view.incident)
        if key and status == "resolved":
            db.execute("DELETE FROM open_incidents WHERE incident_id = ?", (incident_id,))
        elif key and view.status == "resolved":
            other = db.execute(
                "SELECT incident_id FROM open_incidents WHERE dedup_key = ?", (key,)
            ).fetchone()
            if other is not None and other[0] != incident_id:
                raise OpsloopError(
                    f"incident {other[0]} is open for the same rule and subject; resolve it "
                    f"before reopening {incident_id}"
                )
            db.execute(
                "INSERT OR IGNORE INTO open_incidents (dedup_key, incident_id) VALUES (?, ?)",
                (key, incident_id),
            )
        project.emit(
            update,
            "incident.update",
            incident_id,
            before={"status": view.status},
            after={"status": status},
        )
    return update


def runbook_runs_for(project: Project, incident_id: str) -> list[RunbookRun]:
    return [r for r in project.records.list(RunbookRun) if r.incident_id == incident_id]

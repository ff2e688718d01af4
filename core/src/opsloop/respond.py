"""The respond stage: signals -> alert rules -> alerts -> incidents, and incident state.

Records are never rewritten: an incident's status is the newest IncidentUpdate's status.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

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
    owner: str = ""
    suppressed: int = 0  # alerts the rule's rate limit dropped while it was open


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
    owner = record.owner
    for update in updates:
        if update.owner:
            owner = update.owner
    runs = [u.runbook_run_id for u in updates if u.runbook_run_id]
    suppressed = sum(u.suppressed for u in updates)
    return IncidentView(record, status, updates, runs, owner, suppressed)


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


class _Labels(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def rule_key(rule: AlertRule, signal: Signal) -> str:
    """The rule's dedup key for ``signal``: its ``dedup_key`` template filled in."""
    labels = signal.data.get("labels") if isinstance(signal.data, dict) else None
    try:
        return rule.dedup_key.format(
            rule=rule.name,
            subject=signal.subject,
            type=signal.type,
            source=signal.source,
            label=_Labels(labels if isinstance(labels, dict) else {}),
        )
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise OpsloopError(
            f"alert rule '{rule.name}': dedup_key {rule.dedup_key!r} cannot be filled in "
            f"({exc}); use {{rule}}, {{subject}}, {{type}}, {{source}} or {{label[NAME]}}"
        ) from None


def _since(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _count(project: Project, kind: str, since: str, **fields: str) -> int:
    """How many records of ``kind`` since ``since`` whose JSON ``fields`` equal the values."""
    sql = "SELECT COUNT(*) FROM records WHERE kind = ? AND created_at >= ?"
    args: list[Any] = [kind, since]
    for name, value in fields.items():
        sql += f" AND json_extract(body, '$.{name}') = ?"
        args.append(value)
    return int(project.records._db.execute(sql, args).fetchone()[0])


def owner_for(project: Project, rule: AlertRule, signal: Signal) -> str:
    """``[respond] owners``: the rule's name, else the signal type, else the rule's own
    owner, else ``*``."""
    owners = project.config.respond.owners
    return owners.get(rule.name) or owners.get(signal.type) or rule.owner or owners.get("*", "")


def _reopenable(project: Project, key: str, window: float) -> IncidentView | None:
    """The key's incident resolved less than ``window`` seconds ago, if any."""
    since = _since(window)
    for incident in reversed(project.records.list(Incident)):
        if incident.dedup_key != key:
            continue
        view = incident_view(project, incident.id)
        resolved = [u for u in view.updates if u.status == "resolved"]
        if view.status == "resolved" and resolved and resolved[-1].created_at >= since:
            return view
        return None
    return None


def _open_or_attach(
    project: Project,
    rule: AlertRule,
    key: str,
    signal: Signal,
    alert: Alert,
    *,
    severity: str,
    owner: str,
) -> tuple[str, bool]:
    """Open an incident for ``key``, or attach the alert to its open one: (id, opened).

    Atomic across processes: the lookup and the insert run in one BEGIN IMMEDIATE
    transaction, and the store's ``open_incidents`` table (primary key: the dedup key)
    refuses a second open incident for the same key. Within the rule's ``group_window``
    after the key's incident was resolved, the alert reopens it instead.
    """
    with project.records.transaction() as db:
        _index_open_incidents(project)
        row = db.execute(
            "SELECT incident_id FROM open_incidents WHERE dedup_key = ?", (key,)
        ).fetchone()
        if row is not None:
            project.emit(
                IncidentUpdate(
                    incident_id=row[0], note=f"alert {alert.id} attached", alert_id=alert.id
                ),
                "incident.attach",
                row[0],
                after={"alert": alert.id},
                actor="opsloop",
            )
            return row[0], False
        if rule.group_window > 0:
            view = _reopenable(project, key, rule.group_window)
            if view is not None:
                incident_id = view.incident.id
                db.execute(
                    "INSERT INTO open_incidents (dedup_key, incident_id) VALUES (?, ?)",
                    (key, incident_id),
                )
                project.emit(
                    IncidentUpdate(
                        incident_id=incident_id,
                        status="open",
                        note=f"alert {alert.id} attached: reopened within the grouping window",
                        alert_id=alert.id,
                        actor="opsloop",
                    ),
                    "incident.update",
                    incident_id,
                    before={"status": "resolved"},
                    after={"status": "open", "alert": alert.id},
                    actor="opsloop",
                )
                return incident_id, False
        incident = Incident(
            title=signal.summary or f"{rule.name} on {signal.subject}",
            severity=severity,  # type: ignore[arg-type]
            alert_ids=[alert.id],
            subject=signal.subject,
            dedup_key=key,
            owner=owner,
            runbook=rule.runbook,
        )
        db.execute(
            "INSERT INTO open_incidents (dedup_key, incident_id) VALUES (?, ?)",
            (key, incident.id),
        )
        project.emit(
            incident,
            "incident.open",
            incident.id,
            after={"alert": alert.id, "owner": owner, "severity": severity},
            actor="opsloop",
        )
        return incident.id, True


def _suppress(project: Project, rule: AlertRule, key: str, signal: Signal) -> None:
    """Count an alert the rate limit dropped on the key's open incident (if one is open)."""
    if not rule.open_incident:
        return
    row = project.records._db.execute(
        "SELECT incident_id FROM open_incidents WHERE dedup_key = ?", (key,)
    ).fetchone()
    if row is None:
        return
    project.emit(
        IncidentUpdate(
            incident_id=row[0],
            note=f"alert of rule {rule.name} suppressed by its rate limit (signal {signal.id})",
            suppressed=1,
            actor="opsloop",
        ),
        "incident.suppress",
        row[0],
        after={"rule": rule.name, "signal": signal.id},
        actor="opsloop",
    )


def evaluate_signal(project: Project, signal: Signal) -> list[Alert]:
    """Apply every alert rule to ``signal``: emit alerts, open or extend incidents, and run
    (or suggest) the rule's runbook for a new incident."""
    list_notifiers(project)  # a plugin that cannot register its notifiers fails here, loudly
    alerts: list[Alert] = []
    for rule in list_rules(project):
        if not _matches(rule, signal):
            continue
        if rule.threshold > 1:
            seen = _count(
                project,
                Signal.kind,
                _since(rule.window) if rule.window > 0 else "",
                type=signal.type,
                subject=signal.subject,
            )
            if seen < rule.threshold:
                continue
        key = rule_key(rule, signal)
        if rule.rate_limit is not None:
            most, per = rule.rate_limit
            if _count(project, Alert.kind, _since(per), rule=rule.name) >= most:
                _suppress(project, rule, key, signal)
                continue
        severity = rule.severity or signal.severity
        alert = Alert(
            rule=rule.name,
            severity=severity,
            summary=signal.summary,
            signal_ids=[signal.id],
            subject=signal.subject,
            runbook=rule.runbook,
            labels={"dedup_key": key},
        )
        project.emit(
            alert, "alert.fire", alert.id, after={"rule": rule.name, "signal": signal.id},
            actor="opsloop",
        )  # fmt: skip
        alerts.append(alert)
        # Notifiers are told through the outbox (opsloop.notify), from the records emitted
        # here: this alert if its rule opens no incident, else the incident or its update.
        if rule.open_incident:
            owner = owner_for(project, rule, signal)
            incident_id, opened = _open_or_attach(
                project, rule, key, signal, alert, severity=severity, owner=owner
            )
            if opened and rule.runbook:
                start_runbook(project, rule, incident_id)
    return alerts


def _note(project: Project, incident_id: str, note: str, **after: Any) -> None:
    project.emit(
        IncidentUpdate(incident_id=incident_id, note=note, actor="opsloop"),
        "incident.note",
        incident_id,
        after=after or None,
        actor="opsloop",
    )


def start_runbook(project: Project, rule: AlertRule, incident_id: str) -> None:
    """Run the rule's runbook for a new incident, or suggest it (a note on the incident).

    A runbook marked destructive is only suggested; so is every runbook when the rule says
    ``auto_run=False`` or ``[respond] auto_run = "off"``. ``"background"`` (the default)
    starts ``opsloop runbook run NAME --incident ID`` as a detached process, so whatever
    raised the signal (a serving app, a monitor check) does not wait for a kernel;
    ``"inline"`` runs it here, with ``[respond] auto_run_timeout`` per cell.
    """
    from opsloop.runbooks import get_runbook, run_runbook

    name = rule.runbook or ""
    command = f"opsloop runbook run {name} --incident {incident_id}"
    try:
        spec = get_runbook(project, name)
    except OpsloopError as exc:
        _note(project, incident_id, f"runbook {name} cannot run: {exc}", runbook=name)
        return
    mode = project.config.respond.auto_run
    if spec.destructive:
        _note(
            project,
            incident_id,
            f"runbook {name} suggested (destructive, not run by itself): {command}",
            runbook=name,
            suggested=True,
        )
        return
    if not rule.auto_run or mode == "off" or project.detached:
        _note(project, incident_id, f"runbook {name} suggested: {command}", runbook=name,
              suggested=True)  # fmt: skip
        return
    timeout = project.config.respond.auto_run_timeout
    if mode == "inline":
        try:
            run_runbook(project, name, incident_id=incident_id, timeout=timeout)
        except OpsloopError as exc:  # a failed notebook is a failed run; this is before it
            _note(project, incident_id, f"runbook {name} could not start: {exc}", runbook=name)
        return
    log = project.path("runbooks", name, f"auto-{incident_id}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        *opsloop_command(),
        "--project",
        str(project.root),
        "runbook",
        "run",
        name,
        "--incident",
        incident_id,
        "--timeout",
        str(timeout),
    ]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{proc.pid}").start()
    _note(
        project,
        incident_id,
        f"runbook {name} started by itself (process {proc.pid}, log {log})",
        runbook=name,
        pid=proc.pid,
    )


def opsloop_command() -> list[str]:
    """How to start this opsloop's CLI from a child process."""
    return [sys.executable, "-c", "import sys; from opsloop.cli import main; sys.exit(main())"]


def resolve_key(project: Project, key: str, note: str) -> IncidentUpdate | None:
    """Resolve the open incident of ``key``, if there is one (a resolved Alertmanager alert)."""
    row = project.records._db.execute(
        "SELECT incident_id FROM open_incidents WHERE dedup_key = ?", (key,)
    ).fetchone()
    return None if row is None else update_incident(project, row[0], "resolved", note)


def assign_incident(project: Project, incident_id: str, owner: str, note: str = "") -> None:
    """Give an incident a new owner; audited."""
    if not owner.strip():
        raise OpsloopError("owner is empty; pass who owns the incident, e.g. a team or a person")
    view = incident_view(project, incident_id)
    project.emit(
        IncidentUpdate(
            incident_id=incident_id, owner=owner, note=note or f"assigned to {owner}",
            actor=project.audit.actor,
        ),
        "incident.assign",
        incident_id,
        before={"owner": view.owner},
        after={"owner": owner},
    )  # fmt: skip


@dataclass
class TimelineEntry:
    at: str
    what: str  # signal, alert, update, runbook, audit
    text: str


def incident_timeline(project: Project, incident_id: str) -> list[TimelineEntry]:
    """Everything that happened to an incident, oldest first: its signals, alerts, updates,
    runbook runs and the audit entries about it."""
    view = incident_view(project, incident_id)
    out: list[TimelineEntry] = []
    alert_ids = list(view.incident.alert_ids) + [u.alert_id for u in view.updates if u.alert_id]
    for alert_id in dict.fromkeys(alert_ids):
        alert = project.records.get(alert_id)
        if not isinstance(alert, Alert):
            continue
        for signal_id in alert.signal_ids:
            try:
                sig = project.records.get(signal_id)
            except OpsloopError:
                continue
            if isinstance(sig, Signal):
                text = f"{sig.type} from {sig.source}: {sig.summary}"
                out.append(TimelineEntry(sig.created_at, "signal", text))
        text = f"{alert.rule} ({alert.severity}): {alert.summary}"
        out.append(TimelineEntry(alert.created_at, "alert", text))
    for u in view.updates:
        text = " ".join(
            x for x in (u.status or "", f"owner {u.owner}" if u.owner else "", u.note) if x
        )
        out.append(TimelineEntry(u.created_at, "update", text))
    for run in runbook_runs_for(project, incident_id):
        out.append(TimelineEntry(run.started_at or run.created_at, "runbook",
                                 f"{run.runbook} {run.status} -> {run.output_path}"))  # fmt: skip
    for entry in project.audit.entries():
        if entry.get("target") == incident_id:
            out.append(TimelineEntry(str(entry.get("time", "")), "audit",
                                     f"{entry.get('action')} by {entry.get('actor')}"))  # fmt: skip
    return sorted(out, key=lambda e: e.at)


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

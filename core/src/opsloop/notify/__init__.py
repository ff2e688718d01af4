"""Notifications: incident and alert events -> the outbox -> every notifier, exactly once.

The flow (see docs/notifiers.md):

1. A record is emitted (an alert whose rule opens no incident, an incident, an incident
   update). :func:`notification_for` turns it into a :class:`Notification`.
2. :func:`enqueue` writes one outbox row per notifier that wants it (severity and event
   filters), keyed ``<notifier>:<event id>`` so an event is never queued twice.
3. :func:`drain` delivers due rows, notifier by notifier under a lease, oldest first; a
   failure is retried with exponential backoff and blocks the rows behind it (so a resolve
   never overtakes its trigger); a permanent failure (HTTP 400, a refused login) is set
   aside as ``failed`` and listed by ``opsloop notify outbox``.

Notifiers come from ``register_notifiers`` (any plugin's, called with ``notify(alert)``) and
from ``[respond.notify.<name>]`` tables whose ``type`` names a ``register_notifier_types``
kind (built in: webhook, slack, pagerduty, email).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from opsloop.errors import ConfigError, OpsloopError, did_you_mean, one_line
from opsloop.interfaces import Notification, NotifierType
from opsloop.notify.base import DeliveryError, scrub
from opsloop.notify.outbox import Outbox, OutboxRow, backoff_delay, make_owner
from opsloop.records import (
    SEVERITIES,
    Alert,
    Incident,
    IncidentUpdate,
    Record,
    Severity,
)

if TYPE_CHECKING:
    from opsloop.project import Project

__all__ = [
    "EVENTS",
    "DeliveryError",
    "DrainResult",
    "Notification",
    "drain",
    "enqueue",
    "notification_for",
    "notifiers",
    "outbox",
    "prune",
    "reconcile",
]

#: Every event a notification can be about (``events = [...]`` picks some).
EVENTS = (
    "alert",  # an alert whose rule opens no incident
    "incident.open",
    "incident.update",  # another alert attached to an open incident
    "incident.acknowledged",
    "incident.mitigated",
    "incident.resolved",
    "incident.reopened",
    "test",  # `opsloop notify test NAME`
)
_STATUS_EVENTS = {
    "acknowledged": ("incident.acknowledged", "acknowledge"),
    "mitigated": ("incident.mitigated", "note"),
    "resolved": ("incident.resolved", "resolve"),
    "open": ("incident.reopened", "trigger"),
}
_ATTACHED = re.compile(r"\balert (alr_[0-9a-f]+) attached")


class CommonSettings(BaseModel):
    """The keys of ``[respond.notify.<name>]`` every notifier type shares."""

    model_config = ConfigDict(extra="ignore")

    type: str
    severities: list[Severity] = Field(default_factory=lambda: list(SEVERITIES))
    events: list[str] = Field(default_factory=list)  # empty: every event
    backoff: float = Field(default=5.0, gt=0)  # seconds before the first retry, doubled after
    max_backoff: float = Field(default=300.0, gt=0)  # the longest wait between attempts
    enabled: bool = True


COMMON_KEYS = frozenset(CommonSettings.model_fields)


# ---------------------------------------------------------------------------- notifiers
@dataclass
class ConfiguredNotifier:
    """A notifier made from a ``[respond.notify.<name>]`` table: a type's notifier plus the
    common filters and backoff. Registered through ``register_notifiers`` like any other."""

    name: str
    type: str
    common: CommonSettings
    inner: Any  # the type's notifier: deliver(notification, key)
    project: Any = field(repr=False, default=None)

    def accepts(self, n: Notification) -> bool:
        if n.event != "test" and n.severity not in self.common.severities:
            return False
        if self.common.events and n.event not in self.common.events and n.event != "test":
            return False
        inner_accepts = getattr(self.inner, "accepts", None)
        return bool(inner_accepts(n)) if callable(inner_accepts) else True

    def deliver(self, notification: Notification, key: str) -> None:
        self.inner.deliver(notification, key)

    def notify(self, alert: Any) -> None:
        """Send one alert now, outside the outbox (the ``Notifier`` protocol)."""
        self.inner.deliver(_from_alert(alert, self.project), f"{self.name}:{alert.id}")

    def secret_values(self) -> list[str]:
        found = getattr(self.inner, "secret_values", None)
        return list(found()) if callable(found) else []

    def target(self) -> str:
        found = getattr(self.inner, "target", None)
        return str(found()) if callable(found) else ""

    @property
    def lease(self) -> float:
        """Seconds a drain holds this notifier: well beyond one attempt's timeout."""
        timeout = float(getattr(getattr(self.inner, "settings", None), "timeout", 10.0))
        return max(30.0, 3 * timeout + 5)


class _AlertNotifier:
    """A ``register_notifiers`` notifier with only ``notify(alert)``: it is given the alert
    of every alert, incident-open and incident-update event, through the outbox too."""

    def __init__(self, inner: Any, project: Project) -> None:
        self.name = inner.name
        self.inner = inner
        self.project = project

    def accepts(self, n: Notification) -> bool:
        return n.action == "trigger" and bool(n.alert_id)

    def deliver(self, notification: Notification, key: str) -> None:
        self.inner.notify(self.project.records.get(notification.alert_id or ""))


def notifier_types(project: Project) -> dict[str, NotifierType]:
    """Every notifier type plugins register, by name."""
    return {t.name: t for t in project.collect("register_notifier_types")}


def configured_notifiers(project: Project) -> list[ConfiguredNotifier]:
    """The ``[respond.notify.<name>]`` tables, checked and built (once per project).

    A bad table is a one-line ConfigError naming the key, the file and how to fix it.
    """
    return project.memo("opsloop.notify.configured", lambda: _build(project))


def _build(project: Project) -> list[ConfiguredNotifier]:
    from opsloop.config import validate_settings

    source = project.config.source
    tables: dict[str, dict[str, Any]] = project.config.respond.notify
    types = notifier_types(project) if tables else {}
    built: list[ConfiguredNotifier] = []
    for name, table in tables.items():
        prefix = f"respond.notify.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: '{prefix}' must be a table")
        common = validate_settings(CommonSettings, table, source=source, prefix=prefix)
        unknown = [e for e in common.events if e not in EVENTS]
        if unknown:
            raise ConfigError(
                f"{source}: '{prefix}.events' names unknown event '{unknown[0]}'; use some of: "
                + ", ".join(EVENTS)
            )
        kind = types.get(common.type)
        if kind is None:
            raise ConfigError(
                f"{source}: '{prefix}.type' is '{common.type}', which no plugin provides"
                + (did_you_mean(common.type, types) or f"; use one of: {', '.join(types)}")
            )
        own = {k: v for k, v in table.items() if k not in COMMON_KEYS}
        settings = validate_settings(kind.settings_model, own, source=source, prefix=prefix)
        if common.enabled:
            inner = kind.build(name, settings, project)
            built.append(ConfiguredNotifier(name, kind.name, common, inner, project))
    return built


def notifiers(project: Project) -> dict[str, Any]:
    """Every notifier by name, each with ``deliver(notification, key)`` and ``accepts``."""
    from opsloop.respond import list_notifiers

    out: dict[str, Any] = {}
    for item in list_notifiers(project):
        if callable(getattr(item, "deliver", None)):
            out[item.name] = item
        else:
            out[item.name] = _AlertNotifier(item, project)
    return out


# ---------------------------------------------------------------------------- events
def _from_alert(alert: Alert, project: Project, incident: Incident | None = None) -> Notification:
    return Notification(
        id=alert.id,
        event="alert",
        action="trigger",
        dedup_key=f"opsloop/{project.config.project.name}/{alert.id}",
        title=alert.summary or f"{alert.rule} on {alert.subject}",
        severity=alert.severity,
        subject=alert.subject,
        alert_id=alert.id,
        rule=alert.rule,
        runbook=alert.runbook,
        project=project.config.project.name,
        created_at=alert.created_at,
    )


def _alert(project: Project, alert_id: str | None) -> Alert | None:
    if not alert_id:
        return None
    try:
        found = project.records.get(alert_id)
    except Exception:  # noqa: BLE001 - a note naming a missing alert: notify without it
        return None
    return found if isinstance(found, Alert) else None


def notification_for(project: Project, record: Record) -> Notification | None:
    """The notification a record calls for, or None (most records call for none)."""
    from opsloop.respond import incident_view, list_rules

    name = project.config.project.name
    if isinstance(record, Alert):
        rule = next((r for r in list_rules(project) if r.name == record.rule), None)
        if rule is not None and rule.open_incident:
            return None  # told with the incident it opens or joins
        return _from_alert(record, project)
    if isinstance(record, Incident):
        alert = _alert(project, record.alert_ids[0] if record.alert_ids else None)
        return Notification(
            id=record.id,
            event="incident.open",
            action="trigger",
            dedup_key=f"opsloop/{name}/{record.id}",
            title=record.title,
            severity=record.severity,
            subject=record.subject,
            status="open",
            incident_id=record.id,
            alert_id=alert.id if alert else None,
            rule=alert.rule if alert else "",
            runbook=alert.runbook if alert else None,
            project=name,
            created_at=record.created_at,
        )
    if isinstance(record, IncidentUpdate) and (
        record.suppressed
        or not (record.status or record.alert_id or record.owner or _ATTACHED.search(record.note))
    ):
        return None  # a rate-limited alert, a note (a runbook started): nothing to tell people
    if isinstance(record, IncidentUpdate) and not record.runbook_run_id:
        incident = project.records.get(record.incident_id)
        if not isinstance(incident, Incident):
            return None
        if record.status:
            event, action = _STATUS_EVENTS[record.status]
            status: str = record.status
            alert = None
        else:
            match = _ATTACHED.search(record.note)
            alert = _alert(project, match.group(1) if match else None)
            event, action = "incident.update", "trigger"
            status = incident_view(project, incident.id).status
        return Notification(
            id=record.id,
            event=event,
            action=action,  # type: ignore[arg-type]
            dedup_key=f"opsloop/{name}/{incident.id}",
            title=incident.title,
            severity=alert.severity if alert else incident.severity,
            subject=incident.subject,
            status=status,
            incident_id=incident.id,
            alert_id=alert.id if alert else None,
            rule=alert.rule if alert else "",
            runbook=alert.runbook if alert else None,
            note=(f"{record.note}: {alert.summary}" if alert else record.note),
            project=name,
            created_at=record.created_at,
        )
    return None


# ---------------------------------------------------------------------------- outbox
def outbox(project: Project) -> Outbox:
    """The project's outbox: tables in the record store's SQLite file."""
    return project.memo("opsloop.notify.outbox", lambda: Outbox(project.records.path))


def enqueue(
    project: Project, notification: Notification, only: list[str] | None = None
) -> list[str]:
    """Queue ``notification`` for every notifier that accepts it; the names it was newly
    queued for (an event already queued for a notifier is not queued again)."""
    box = outbox(project)
    queued = []
    now = time.time()
    for name, target in notifiers(project).items():
        if only is not None and name not in only:
            continue
        accepts: Callable[[Notification], bool] | None = getattr(target, "accepts", None)
        try:
            wanted = accepts is None or accepts(notification)
        except Exception as exc:  # noqa: BLE001 - a broken filter must not lose the event
            _warn(f"notifier '{name}' failed to filter {notification.id}: {one_line(exc)}")
            wanted = True
        if not wanted:
            continue
        if box.enqueue(name, notification.id, notification.event, notification.to_dict(), now=now):
            queued.append(name)
    return queued


#: How far back ``reconcile`` looks, and so how young a delivered row may be pruned.
RECONCILE_WINDOW = 7 * 86400.0


def reconcile(project: Project, *, max_age: float = RECONCILE_WINDOW) -> list[str]:
    """Queue what a process that died between storing a record and queuing its
    notification left out; the keys it queued. ``opsloop notify flush`` runs it first.

    A notifier is caught up from its oldest outbox row on (never with events from before
    it was first used), at most ``max_age`` seconds back. Such a late row goes out after
    the rows queued since, so its order is the one thing it does not keep.
    """
    from datetime import UTC, datetime, timedelta

    since = outbox(project).first_queued()
    targets = [name for name in notifiers(project) if name in since]
    if not targets:
        return []
    floor = (datetime.now(UTC) - timedelta(seconds=max_age)).isoformat(timespec="microseconds")
    start = max(floor, min(since[name] for name in targets))
    found = [
        r
        for kind in (Alert, Incident, IncidentUpdate)
        for r in project.records.list(kind)
        if r.created_at >= start
    ]
    queued: list[str] = []
    for record in sorted(found, key=lambda r: (r.created_at, r.id)):
        late = [name for name in targets if record.created_at >= since[name]]
        notification = notification_for(project, record) if late else None
        if notification is not None:
            queued += [f"{n}:{record.id}" for n in enqueue(project, notification, only=late)]
    return queued


def prune(project: Project, older_than: float) -> int:
    """Delete rows delivered more than ``older_than`` seconds ago (audited); pending and
    failed rows are never pruned. Younger than the reconcile window is refused: those rows
    are what keeps ``reconcile`` from sending an event twice."""
    from datetime import UTC, datetime, timedelta

    if older_than < RECONCILE_WINDOW:
        raise OpsloopError(
            f"--older-than must be at least {RECONCILE_WINDOW / 86400:.0f} days: younger "
            "delivered rows keep `opsloop notify flush` from sending an event twice"
        )
    cutoff = (datetime.now(UTC) - timedelta(seconds=older_than)).isoformat(timespec="microseconds")
    count = outbox(project).prune(cutoff)
    if count:
        project.audit.append("notify.prune", "outbox", after={"rows": count, "before": cutoff})
    return count


@dataclass
class DrainResult:
    """What one drain did: delivered, retried later, failed for good, skipped."""

    delivered: list[str] = field(default_factory=list)  # idempotency keys
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # notifiers another process is draining
    unknown: list[str] = field(default_factory=list)  # rows for notifiers no longer configured


def _warn(message: str) -> None:
    print(f"opsloop: warning: {message}", file=sys.stderr)


def drain(
    project: Project,
    *,
    force: bool = False,
    only: list[str] | None = None,
    quiet: bool = False,
) -> DrainResult:
    """Deliver the outbox's due rows (every pending row with ``force``), notifier by
    notifier under a lease, oldest first; see the module docstring for failures."""
    box = outbox(project)
    targets = notifiers(project)
    result = DrainResult()
    owner = make_owner()
    for name in box.notifiers_with_pending():
        if only is not None and name not in only:
            continue
        target = targets.get(name)
        if target is None:
            result.unknown.append(name)
            continue
        lease = float(getattr(target, "lease", 60.0))
        if not box.claim(name, owner, now=time.time(), lease=lease):
            result.busy.append(name)
            continue
        try:
            _drain_one(project, box, name, target, owner, lease, force, quiet, result)
        finally:
            box.release(name, owner)
    return result


def _drain_one(
    project: Project,
    box: Outbox,
    name: str,
    target: Any,
    owner: str,
    lease: float,
    force: bool,
    quiet: bool,
    result: DrainResult,
) -> None:
    common: CommonSettings | None = getattr(target, "common", None)
    first, ceiling = (common.backoff, common.max_backoff) if common else (5.0, 300.0)
    secrets_of = getattr(target, "secret_values", None)
    claimed_at = time.time()  # the caller has just taken the lease
    while True:
        row = box.next_pending(name)
        now = time.time()
        if row is None or (not force and row.next_at > now):
            return
        # Renew once half the lease is gone, so at least half of it (more than one attempt's
        # timeout) is left for this row; a lease lost meanwhile stops this drain.
        if now - claimed_at > lease / 2:
            if not box.claim(name, owner, now=now, lease=lease):
                result.busy.append(name)
                return
            claimed_at = now
        try:
            target.deliver(Notification.from_dict(row.notification), row.key)
        except Exception as exc:  # noqa: BLE001 - any failure is kept, retried or set aside
            secrets = list(secrets_of()) if callable(secrets_of) else []
            message = scrub(str(exc) if isinstance(exc, DeliveryError) else one_line(exc), secrets)
            retry = exc.retry if isinstance(exc, DeliveryError) else True
            if retry:
                after = exc.retry_after if isinstance(exc, DeliveryError) else None
                delay = (
                    after if after is not None else backoff_delay(row.attempts + 1, first, ceiling)
                )
                box.mark_retry(row.seq, owner, message, now + delay)
                result.retrying.append(row.key)
                if not quiet:
                    _warn(
                        f"notifier '{name}' failed: {message}; kept in the outbox, next attempt "
                        f"in {delay:.{0 if delay >= 10 else 1}f} s (`opsloop notify outbox`)"
                    )
                return  # the rows behind it wait: order is kept
            if box.mark_failed(row.seq, owner, message):
                result.failed.append(row.key)
                project.audit.append(
                    "notify.failed", row.key, after=_audit_body(row, message), actor="opsloop"
                )
            if not quiet:
                _warn(
                    f"notifier '{name}' failed: {message}; set aside as failed "
                    "(`opsloop notify flush --retry-failed` after fixing it)"
                )
            continue
        if box.mark_delivered(row.seq, owner):
            result.delivered.append(row.key)
            project.audit.append("notify.deliver", row.key, after=_audit_body(row), actor="opsloop")


def _audit_body(row: OutboxRow, error: str = "") -> dict[str, Any]:
    body = {
        "notifier": row.notifier,
        "event": row.event,
        "event_id": row.event_id,
        "attempts": row.attempts + 1,
    }
    return body | ({"error": error} if error else {})


def on_record(project: Project, record: Record) -> None:
    """Queue the notification ``record`` calls for and try to deliver it now.

    Never raises: a notifier that fails, even a bug here, must not stop an incident from
    opening; the failure is reported on stderr. (A plugin that cannot register its
    notifiers is a one-line error earlier, when ``evaluate_signal`` starts.)
    """
    if not isinstance(record, Alert | Incident | IncidentUpdate):
        return
    try:
        notification = notification_for(project, record)
        if notification is None:
            return
        queued = enqueue(project, notification)
        if queued:
            drain(project, only=queued)
    except Exception as exc:  # noqa: BLE001 - reported; the outbox keeps what was queued
        _warn(f"notifications for {record.id} failed: {one_line(exc)}")

"""The typed records that flow between stages: one shape each, shared by every plugin.

A record is written once and never rewritten. A change of state (an incident resolved, a
runbook linked) is a new record that points at the old one, so the history stays intact.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


def new_id(prefix: str) -> str:
    """A sortable, unique id: prefix, millisecond time, 8 random hex digits (``sig_018f…``)."""
    return f"{prefix}_{int(time.time() * 1000):012x}{os.urandom(4).hex()}"


def utcnow() -> str:
    """Now, as an ISO 8601 UTC timestamp with microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of every record: an id, a kind and a creation time."""

    kind: ClassVar[str] = "record"
    prefix: ClassVar[str] = "rec"

    id: str = ""
    created_at: str = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", new_id(self.prefix))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``kind`` added."""
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record of the right class from :meth:`to_dict` output."""
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        target = RECORD_TYPES.get(kind, cls)
        names = {f.name for f in dataclasses.fields(target)}
        return target(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, kw_only=True)
class Signal(Record):
    """Something a monitor or a guard observed: drift, an SLO burn, a blocked request."""

    kind: ClassVar[str] = "signal"
    prefix: ClassVar[str] = "sig"

    source: str  # the plugin or check that raised it, e.g. "evidently.drift"
    type: str  # "drift", "slo_burn", "guard_block", "data_quality", ...
    severity: Severity = "warning"
    subject: str = ""  # what it is about: a model name, a table, a route
    summary: str = ""
    value: float | None = None
    threshold: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Alert(Record):
    """A signal that an alert rule decided a person should know about."""

    kind: ClassVar[str] = "alert"
    prefix: ClassVar[str] = "alr"

    rule: str
    severity: Severity
    summary: str
    signal_ids: list[str] = field(default_factory=list)
    subject: str = ""
    runbook: str | None = None  # the runbook the rule suggests
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Incident(Record):
    """An incident opened from one or more alerts; its later changes are IncidentUpdates."""

    kind: ClassVar[str] = "incident"
    prefix: ClassVar[str] = "inc"

    title: str
    severity: Severity
    alert_ids: list[str] = field(default_factory=list)
    subject: str = ""
    status: Literal["open"] = "open"
    #: one open incident per key (rule and subject), enforced by the record store
    dedup_key: str = ""
    owner: str = ""  # from the rule or [respond] owners; `opsloop incident assign` changes it
    runbook: str | None = None  # the rule's runbook: run by itself, or suggested


@dataclass(frozen=True, kw_only=True)
class IncidentUpdate(Record):
    """A change to an incident: status, a linked runbook run, a note."""

    kind: ClassVar[str] = "incident_update"
    prefix: ClassVar[str] = "inu"

    incident_id: str
    status: Literal["open", "acknowledged", "mitigated", "resolved"] | None = None
    runbook_run_id: str | None = None
    note: str = ""
    actor: str = ""
    owner: str | None = None  # a new owner (`opsloop incident assign`)
    alert_id: str | None = None  # an alert attached to the incident
    suppressed: int = 0  # alerts of the rule dropped by its rate limit


@dataclass(frozen=True, kw_only=True)
class LoadRecord(Record):
    """One ingestion run: what was loaded, from where, into where."""

    kind: ClassVar[str] = "load"
    prefix: ClassVar[str] = "lod"

    source: str
    pipeline: str
    dataset: str
    destination: str
    load_ids: list[str] = field(default_factory=list)  # engine load ids (dlt's)
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows loaded
    status: Literal["loaded", "empty", "failed"] = "loaded"
    started_at: str = ""
    finished_at: str = ""
    error: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass(frozen=True, kw_only=True)
class ModelVersionRef(Record):
    """A registered model version, as every stage refers to it."""

    kind: ClassVar[str] = "model_version"
    prefix: ClassVar[str] = "mvr"

    name: str
    version: str
    uri: str  # e.g. models:/name/3
    store: str  # the registry plugin that holds it
    run_id: str | None = None
    aliases: list[str] = field(default_factory=list)
    load_ids: list[str] = field(default_factory=list)  # training-data lineage
    metrics: dict[str, float] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunbookRun(Record):
    """One execution of a runbook notebook; secret parameters are never stored."""

    kind: ClassVar[str] = "runbook_run"
    prefix: ClassVar[str] = "rbr"

    runbook: str
    input_path: str
    output_path: str
    parameters: dict[str, Any] = field(default_factory=dict)
    status: Literal["succeeded", "failed"] = "succeeded"
    incident_id: str | None = None
    error: str | None = None
    started_at: str = ""
    finished_at: str = ""
    #: what the runbook concluded (``opsloop.runbooks.runbook_result``): summary, recommendation
    result: dict[str, Any] = field(default_factory=dict)
    #: the executed notebook as offline HTML, beside ``output_path`` ('' when not exported)
    html_path: str = ""
    #: who ran it: the actor of ``opsloop runbook run``, or the Jupyter user of a hand run
    actor: str = ""
    #: True when a person ran the notebook cell by cell (``record_hand_run``), not papermill
    by_hand: bool = False


@dataclass(frozen=True, kw_only=True)
class AliasMove(Record):
    """An alias moved: a promotion, a named alias set, or a rollback. The alias history.

    ``opsloop.registry`` emits one for every move; a rollback replays them (a move pushes,
    a rollback pops), so the history is never rewritten.
    """

    kind: ClassVar[str] = "alias_move"
    prefix: ClassVar[str] = "alm"

    model: str
    alias: str
    to_version: str
    from_version: str | None = None
    reason: str = ""
    forced: bool = False  # a failed gate was overridden with a written reason
    rollback: bool = False
    actor: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)  # [{name, ok, detail}]
    removed: bool = False  # the alias was removed (``to_version`` is ""): a challenger retired


@dataclass(frozen=True, kw_only=True)
class Evidence(Record):
    """A recorded result about a model version: an evaluation, a load test, a security scan."""

    kind: ClassVar[str] = "evidence"
    prefix: ClassVar[str] = "evd"

    model: str
    version: str
    type: Literal["evaluation", "load_test", "security_scan"]
    passed: bool | None = None  # None: recorded without a verdict
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it was read from, if any
    sha256: str = ""  # ... and that file's SHA-256
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class ReadinessVerdict(Record):
    """Go or no-go for deploying a model version, item by item (``opsloop model ready``)."""

    kind: ClassVar[str] = "readiness"
    prefix: ClassVar[str] = "rdy"

    model: str
    version: str
    items: list[dict[str, Any]] = field(default_factory=list)  # [{item, ok, detail}]
    go: bool = False
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class ProfileRecord(Record):
    """A reference profile stored for a model version: where its file is and its SHA-256.

    The newest record of a version is the profile its drift checks use; the file is
    checked against ``sha256`` before every use.
    """

    kind: ClassVar[str] = "profile"
    prefix: ClassVar[str] = "prr"

    model: str
    version: str
    profile_id: str
    path: str  # relative to the project home
    sha256: str
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    prediction: bool = False  # the model's output is profiled too
    source: dict[str, Any] = field(default_factory=dict)  # table/file, load ids, content hash
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class Approval(Record):
    """A person approved a destructive action (opsloop.actions): who, what, from and to."""

    kind: ClassVar[str] = "approval"
    prefix: ClassVar[str] = "apv"

    action: str  # "model.rollback", ...
    target: str
    summary: str = ""
    approved_by: str = ""
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Schedule(Record):
    """A schedule's definition: when (a cron expression in a timezone) and what (a job kind,
    its target and parameters). The newest record of a name is its definition; one with
    ``removed`` set ends it (``opsloop.schedule``)."""

    kind: ClassVar[str] = "schedule"
    prefix: ClassVar[str] = "sch"

    name: str
    cron: str = ""
    timezone: str = "UTC"
    job: str = ""  # the job kind: "runbook", "monitor", or one a plugin registers
    target: str = ""  # what the job runs: a runbook name, a model, "*"
    parameters: dict[str, Any] = field(default_factory=dict)  # secrets only as "env:NAME"
    catchup: bool = False  # run every missed slot after downtime, not only the newest
    description: str = ""
    removed: bool = False
    actor: str = ""


@dataclass(frozen=True, kw_only=True)
class ScheduleRun(Record):
    """One run of a schedule for one slot: when it was due, when it ran, how it ended."""

    kind: ClassVar[str] = "schedule_run"
    prefix: ClassVar[str] = "scr"

    schedule: str
    schedule_id: str  # the Schedule record (definition) it ran
    slot: str  # the due time, ISO 8601 UTC
    job: str  # "kind:target"
    status: Literal["succeeded", "failed"] = "succeeded"
    started_at: str = ""
    finished_at: str = ""
    summary: str = ""
    error: str | None = None
    record_id: str | None = None  # what the job wrote: the RunbookRun id, ...
    missed: int = 0  # earlier slots skipped by the missed-run policy
    trigger: Literal["due", "manual"] = "due"
    host: str = ""  # host:pid that ran it


@dataclass(frozen=True, kw_only=True)
class RetrainRun(Record):
    """One automated retraining run (opsloop.retrain): every step, its timing, the verdict.

    Written once, when the run ended; each step was audited as it happened. ``verdict``:
    ``promoted`` (the challenger is the new champion), ``rolled_back`` (its canary failed;
    the challenger alias was removed), ``rejected`` (it missed the promotion gate on the
    holdout, never served), ``dry_run`` (no approval: nothing moved), ``failed`` (an
    error; ``error`` says which step).
    """

    kind: ClassVar[str] = "retrain_run"
    prefix: ClassVar[str] = "rtr"

    model: str
    trigger: str  # "manual", or the signal type that started it
    signal_id: str | None = None
    verdict: Literal["promoted", "rolled_back", "rejected", "dry_run", "failed"] = "failed"
    version: str | None = None  # the retrained version (the challenger)
    champion_before: str | None = None
    champion_after: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)  # [{step, status, seconds, ...}]
    canary: dict[str, Any] = field(default_factory=dict)  # the figures of the verdict
    approved_by: str = ""
    actor: str = ""
    started_at: str = ""
    finished_at: str = ""
    error: str | None = None


RECORD_TYPES: dict[str, type[Record]] = {
    cls.kind: cls
    for cls in (
        Signal,
        Alert,
        Incident,
        IncidentUpdate,
        LoadRecord,
        ModelVersionRef,
        RunbookRun,
        AliasMove,
        Evidence,
        ReadinessVerdict,
        ProfileRecord,
        Approval,
        Schedule,
        ScheduleRun,
        RetrainRun,
    )
}

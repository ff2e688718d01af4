"""What the shipped runbooks and reports compute, kept out of the notebooks so it is typed,
tested without a kernel and reused: an incident with its evidence, an incident's timeline
from the audit log and the records, a model's health over a window, the governance state
of every model, and the postmortem draft.

Everything here reads; nothing changes state. The notebooks under ``notebooks/`` call
these functions and draw the pictures; a destructive step goes through
:mod:`opsloop.actions` in the notebook itself, where the approval parameter is visible.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.records import (
    Alert,
    Approval,
    Incident,
    IncidentUpdate,
    LoadRecord,
    Record,
    RunbookRun,
    Signal,
)
from opsloop.runbooks import RUN_ID_ENV  # the run id opsloop puts in the kernel's environment

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.project import Project


def open_project(project_dir: str = ".") -> Project:
    """The project a runbook works on: ``project_dir`` (opsloop passes its root), else the
    one around the kernel's working folder. Plugins are not started (nothing is served)."""
    from opsloop.project import Project

    return Project.open(None if project_dir in ("", ".") else project_dir, start=False)


def current_run_id() -> str:
    """The id of the runbook run this kernel executes ('' when run by hand in Jupyter)."""
    return os.environ.get(RUN_ID_ENV, "")


def _parse(when: str) -> datetime:
    value = datetime.fromisoformat(when)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fetch(project: Project, record_id: str) -> Record | None:
    """A record by id, or None when it is missing (a runbook goes on without it)."""
    try:
        return project.records.get(record_id)
    except OpsloopError:
        return None


# --------------------------------------------------------------------------- incidents
@dataclass
class IncidentContext:
    """An incident with its alerts, signals, updates, runbook runs and current status."""

    incident: Incident
    status: str
    alerts: list[Alert] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    updates: list[IncidentUpdate] = field(default_factory=list)
    runs: list[RunbookRun] = field(default_factory=list)


def incident_context(project: Project, incident_id: str) -> IncidentContext:
    """Everything recorded about one incident; a one-line error for an unknown id."""
    from opsloop.respond import incident_view

    record = fetch(project, incident_id)
    if not isinstance(record, Incident):
        raise OpsloopError(
            f"'{incident_id}' is not an incident of the project in {project.root}; "
            "`opsloop incident list` shows them"
        )
    view = incident_view(project, incident_id)
    alerts = [a for a in (fetch(project, i) for i in record.alert_ids) if isinstance(a, Alert)]
    for update in view.updates:  # alerts attached later: "alert alr_... attached"
        for word in update.note.split():
            if word.startswith(Alert.prefix + "_") and word not in record.alert_ids:
                found = fetch(project, word)
                if isinstance(found, Alert):
                    alerts.append(found)
    signal_ids = dict.fromkeys(s for a in alerts for s in a.signal_ids)
    signals = [s for s in (fetch(project, i) for i in signal_ids) if isinstance(s, Signal)]
    runs = [r for r in project.records.list(RunbookRun) if r.incident_id == incident_id]
    return IncidentContext(record, view.status, alerts, signals, list(view.updates), runs)


def signals_for(
    project: Project, kind: str, subject: str = "", since: datetime | None = None
) -> list[Signal]:
    """Signals of one type (``drift``, ``guard_block``...) for ``subject``, oldest first."""
    return [
        s
        for s in project.records.list(Signal)
        if s.type == kind
        and (not subject or s.subject == subject)
        and (since is None or _parse(s.created_at) >= since)
    ]


# --------------------------------------------------------------------------- timeline
@dataclass(frozen=True)
class Event:
    """One line of a timeline: when, what kind, what happened, by whom, the id behind it."""

    time: str
    kind: str
    what: str
    actor: str = ""
    ref: str = ""


def _mentions(value: Any, ids: set[str]) -> bool:
    text = json.dumps(value, default=str)
    return any(i in text for i in ids)


def incident_timeline(project: Project, ctx: IncidentContext) -> list[Event]:
    """The incident's timeline, oldest first: its signals, alerts, updates and runbook runs
    from the records, and every audit entry that names the incident, its alerts, its runs
    or an approval given during it on its subject."""
    events: list[Event] = []
    for s in ctx.signals:
        measured = f" (value {s.value:.3g})" if s.value is not None else ""
        events.append(Event(s.created_at, "signal", f"{s.type} from {s.source}: {s.summary}"
                            f"{measured}", s.source, s.id))  # fmt: skip
    for a in ctx.alerts:
        events.append(Event(a.created_at, "alert", f"rule {a.rule} fired ({a.severity})"
                            + (f", suggests runbook {a.runbook}" if a.runbook else ""),
                            "opsloop", a.id))  # fmt: skip
    inc = ctx.incident
    events.append(Event(inc.created_at, "incident", f"opened: {inc.title} ({inc.severity})",
                        "opsloop", inc.id))  # fmt: skip
    for u in ctx.updates:
        if u.runbook_run_id:
            continue  # shown with the run below
        what = f"status {u.status}" if u.status else "note"
        events.append(Event(u.created_at, "update", f"{what}: {u.note}".rstrip(": "), u.actor,
                            u.id))  # fmt: skip
    for r in ctx.runs:
        verdict = r.result.get("recommendation") or ""
        events.append(Event(r.started_at or r.created_at, "runbook",
                            f"runbook {r.runbook} {r.status}"
                            + (f": {verdict}" if verdict else "")
                            + (f" ({r.error})" if r.error else ""), "", r.id))  # fmt: skip
    ids = {inc.id, *(a.id for a in ctx.alerts), *(r.id for r in ctx.runs)}
    seen = {e.ref for e in events}
    start = _parse(inc.created_at)
    for entry in project.audit.entries():
        action, target = str(entry.get("action", "")), str(entry.get("target", ""))
        named = target in ids or _mentions(
            [entry.get("after"), entry.get("detail"), entry.get("before")], ids
        )
        acted = (
            inc.subject
            and action.startswith(("action.", "model."))
            and target.split("@")[0].split("/")[0] == inc.subject
            and _parse(str(entry.get("time"))) >= start
        )
        if not (named or acted):
            continue
        if action == "runbook.run" and (entry.get("after") or {}).get("run_id") in seen:
            continue  # the run is on the timeline already
        if (action in ("incident.open", "alert.fire") or action.startswith("record.")) and (
            target in seen
        ):
            continue  # the record itself is on the timeline already
        detail = entry.get("detail") or {}
        note = detail.get("summary") or detail.get("approved_by") or ""
        events.append(Event(str(entry.get("time")), "audit", f"{action} {target}"
                            + (f" ({note})" if note else ""), str(entry.get("actor", "")),
                            str(entry.get("id", ""))))  # fmt: skip
    return sorted(events, key=lambda e: _parse(e.time))


def approvals_for(project: Project, subject: str, since: str) -> list[Approval]:
    """Approvals given on ``subject`` (a model) since ``since``."""
    start = _parse(since)
    return [
        a
        for a in project.records.list(Approval)
        if a.target.split("@")[0] == subject and _parse(a.created_at) >= start
    ]


def postmortem_markdown(project: Project, ctx: IncidentContext, events: list[Event]) -> str:
    """A draft postmortem for the incident: summary, impact, timeline, what was run and
    decided, and the questions a person still has to answer (left as TODO, never invented)."""
    inc = ctx.incident
    end = ctx.updates[-1].created_at if ctx.updates else inc.created_at
    for u in ctx.updates:
        if u.status in ("resolved", "mitigated"):
            end = u.created_at
    duration = _parse(end) - _parse(inc.created_at)
    lines = [
        f"# Postmortem (draft): {inc.title}",
        "",
        f"- incident: `{inc.id}` ({inc.severity}), status **{ctx.status}**",
        f"- subject: {inc.subject or '(none)'}",
        f"- opened: {inc.created_at[:19]} UTC; last change: {end[:19]} UTC "
        f"(open for {_duration(duration)})",
        f"- alerts: {len(ctx.alerts)}, signals: {len(ctx.signals)}, runbook runs: {len(ctx.runs)}",
        f"- drafted by opsloop for {project.audit.actor} at {datetime.now(UTC).isoformat()[:19]}"
        " UTC: check every line",
        "",
        "## Summary",
        "",
        "TODO: two or three sentences a reader outside the team understands.",
        "",
        "## Signals",
        "",
    ]
    if ctx.signals:
        lines += [
            f"- `{s.id}` {s.type} from {s.source} ({s.severity}): {s.summary}" for s in ctx.signals
        ]
    else:
        lines.append("No signal is linked to this incident.")
    lines += ["", "## Timeline (UTC)", "", "| time | what | who | ref |", "|---|---|---|---|"]
    for e in events:
        what = e.what.replace("|", "\\|")
        lines.append(f"| {e.time[:19]} | {e.kind}: {what} | {e.actor} | `{e.ref}` |")
    lines += ["", "## Runbooks run", ""]
    if ctx.runs:
        for r in ctx.runs:
            summary = r.result.get("summary") or ""
            lines.append(
                f"- {r.runbook} `{r.id}` {r.status}"
                + (f": {summary}" if summary else "")
                + (f" (recommendation: {r.result['recommendation']})"
                   if r.result.get("recommendation") else "")
                + (f" -> {r.output_path}" if r.output_path else "")
            )  # fmt: skip
    else:
        lines.append("No runbook ran for this incident.")
    approvals = approvals_for(project, inc.subject, inc.created_at) if inc.subject else []
    lines += ["", "## Changes made", ""]
    if approvals:
        lines += [
            f"- {a.created_at[:19]} {a.summary} (approved by {a.approved_by}, `{a.id}`)"
            for a in approvals
        ]
    else:
        lines.append("No approved change is recorded for this incident's subject.")
    lines += [
        "",
        "## Impact",
        "",
        "TODO: who or what was affected, for how long, how badly (requests, decisions, money).",
        "",
        "## Root cause",
        "",
        "TODO: why it happened; ask why until the answer is something the team can change.",
        "",
        "## What went well, what did not",
        "",
        "TODO",
        "",
        "## Action items",
        "",
        "| action | owner | due |",
        "|---|---|---|",
        "| TODO | | |",
        "",
    ]
    return "\n".join(lines)


def _duration(delta: timedelta) -> str:
    seconds = int(max(delta.total_seconds(), 0))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# --------------------------------------------------------------------------- model health
@dataclass
class ModelHealth:
    """One model's week (or any window): traffic, latency, drift, quality and incidents."""

    model: str
    since: str
    until: str
    versions: list[str] = field(default_factory=list)
    traffic: list[dict[str, Any]] = field(default_factory=list)  # per day: day, rows, requests
    latency: list[dict[str, Any]] = field(default_factory=list)  # per day: p50, p95, p99 (ms)
    drift: list[dict[str, Any]] = field(default_factory=list)  # newest signal's features
    drift_history: list[dict[str, Any]] = field(default_factory=list)  # time, share, drifted
    quality: list[dict[str, Any]] = field(default_factory=list)  # per day: labelled, accuracy..
    baseline: dict[str, float] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(int(d["rows"]) for d in self.traffic)

    def verdict(self) -> str:
        """``healthy``, ``attention`` (drift or an incident not resolved) or ``no-traffic``."""
        if not self.traffic:
            return "no-traffic"
        if any(i["status"] != "resolved" for i in self.incidents) or any(
            d.get("drifted") for d in self.drift
        ):
            return "attention"
        return "healthy"


def _day(value: Any) -> str:
    return str(value)[:10]


def model_health(project: Project, model: str, days: int = 7) -> ModelHealth:
    """Traffic, latency, drift per feature, quality from feedback and incidents of ``model``
    over the last ``days`` days, read from the prediction log and the records."""
    import numpy as np

    from opsloop.respond import list_incidents

    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    health = ModelHealth(model, since.isoformat()[:19], until.isoformat()[:19])
    frame = project.hook.read_predictions(project=project, model=model, since=since.isoformat())
    if frame is None or len(frame) == 0:
        health.notes.append(f"no prediction was logged for {model} in the last {days} day(s)")
    else:
        frame = frame.copy()
        frame["day"] = frame["logged_at"].map(_day) if "logged_at" in frame else "?"
        if "model_version" in frame:
            health.versions = sorted({str(v) for v in frame["model_version"].dropna()})
        for day, rows in frame.groupby("day", sort=True):
            item: dict[str, Any] = {"day": str(day), "rows": len(rows)}
            if "request_id" in rows:
                item["requests"] = int(rows["request_id"].nunique())
            health.traffic.append(item)
            if "latency_ms" in rows:
                # one latency per request: the batch's rows share it
                per_request = rows.drop_duplicates("request_id") if "request_id" in rows else rows
                values = per_request["latency_ms"].dropna().to_numpy(dtype=float)
                if len(values):
                    p50, p95, p99 = np.percentile(values, [50, 95, 99])
                    health.latency.append(
                        {"day": str(day), "p50": float(p50), "p95": float(p95), "p99": float(p99)}
                    )
            quality = _day_quality(rows)
            if quality:
                health.quality.append({"day": str(day), **quality})
        if not health.quality:
            health.notes.append("no feedback label arrived in the window: quality is unknown")
    health.baseline = _baseline(project, model)
    drift = signals_for(project, "drift", model, since)
    for s in drift:
        features = [f for f in s.data.get("features") or [] if isinstance(f, dict)]
        health.drift_history.append(
            {
                "time": s.created_at,
                "share": s.value,
                "drifted": [f.get("feature") for f in features if f.get("drifted")],
            }
        )
    if drift:
        health.drift = [
            {k: f.get(k) for k in ("feature", "method", "statistic", "threshold", "drifted")}
            for f in drift[-1].data.get("features") or []
            if isinstance(f, dict)
        ]
    else:
        health.notes.append("no drift check recorded a drift signal in the window")
    for view in list_incidents(project):
        inc = view.incident
        if inc.subject == model and _parse(inc.created_at) >= since:
            health.incidents.append(
                {
                    "id": inc.id,
                    "opened": inc.created_at[:19],
                    "severity": inc.severity,
                    "status": view.status,
                    "title": inc.title,
                    "runbook_runs": len(view.runbook_runs),
                }
            )
    return health


def _day_quality(rows: pd.DataFrame) -> dict[str, Any]:
    """Accuracy (or MAE for numbers that are not labels) of one day's labelled rows."""
    import numpy as np

    if "label" not in rows or "prediction" not in rows:
        return {}
    labelled = rows[rows["label"].notna() & rows["prediction"].notna()]
    if labelled.empty:
        return {}
    truth = labelled["label"].astype(str).to_numpy()
    predicted = labelled["prediction"].map(_label_text).to_numpy()
    return {"labelled": len(labelled), "accuracy": float(np.mean(truth == predicted))}


def _label_text(value: Any) -> str:
    """A prediction as its label text: 1.0 and "1" and 1 are the same label."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _baseline(project: Project, model: str) -> dict[str, float]:
    from opsloop.quality import baseline_metrics
    from opsloop.reference import version_for

    try:
        metrics, _ = baseline_metrics(project, version_for(project, model))
    except OpsloopError:
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)}


# --------------------------------------------------------------------------- governance
def governance_state(project: Project) -> dict[str, Any]:
    """Every model with its versions, aliases, newest readiness verdict and model card
    gaps, and the audit chain's state."""
    from opsloop import modelcard, registry
    from opsloop.readiness import latest_verdict

    store = registry.get_store(project)
    models: list[dict[str, Any]] = []
    for name in sorted(store.list_models()):
        versions: list[dict[str, Any]] = []
        for ref in store.list_versions(name):
            ready = latest_verdict(project, name, ref.version)
            versions.append(
                {
                    "version": ref.version,
                    "aliases": list(ref.aliases),
                    "registered": ref.created_at[:19],
                    "load_ids": list(ref.load_ids),
                    "readiness": None if ready is None else ("go" if ready.go else "no-go"),
                }
            )
        try:
            card = modelcard.build_card(project, name)
            gaps = [g["field"] for g in card.get("gaps", [])]
            card_version = card["model"]["version"]
        except OpsloopError as exc:
            gaps, card_version = [f"card: {exc}"], ""
        moves = registry.alias_moves(project, name)
        models.append(
            {
                "name": name,
                "versions": versions,
                "aliases": {a: v["version"] for v in versions for a in v["aliases"]},
                "card_version": card_version,
                "card_gaps": gaps,
                "alias_moves": len(moves),
                "forced_moves": sum(1 for m in moves if m.forced),
                "rollbacks": sum(1 for m in moves if m.rollback),
            }
        )
    verdict = project.audit.verify()
    counts: dict[str, int] = {}
    for entry in project.audit.entries():
        action = str(entry.get("action", ""))
        counts[action] = counts.get(action, 0) + 1
    return {
        "models": models,
        "audit": {
            "ok": verdict.ok,
            "entries": verdict.entries,
            "problem": verdict.reason,
            "bad_seq": verdict.bad_seq,
            "actions": dict(sorted(counts.items())),
        },
        "loads": {
            "total": len(project.records.list(LoadRecord)),
            "failed": sum(1 for r in project.records.list(LoadRecord) if r.status == "failed"),
        },
    }


def write_text_next_to_run(output_dir: str, name: str, text: str) -> Path:
    """Write ``<output_dir>/<run id>.<name>`` (the executed notebook's folder and id), or
    ``./<name>`` when run by hand; returns the path. Never overwrites an existing file."""
    run_id = current_run_id()
    folder = Path(output_dir) if output_dir else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{run_id}.{name}" if run_id else name
    path = folder / stem
    if path.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"{stamp}.{stem}"
    path.write_text(text, encoding="utf-8")
    return path

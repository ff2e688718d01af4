"""Schedules: definitions kept as records, due slots claimed once across processes, runs
recorded, failures turned into signals, and the loop ``opsloop scheduler`` runs.

Definitions are :class:`~opsloop.records.Schedule` records: the newest one of a name is
its definition, one with ``removed`` set ends it (records are never rewritten). A due slot
is *claimed* in the record store before it runs (``RecordStore.claim``: one SQLite write
transaction, and the slot is a unique key), so two schedulers, or a scheduler and a
``schedule run-due`` from cron, never run the same slot twice.

Missed runs (the scheduler was down when slots fell due): by default a schedule runs
once, for the newest missed slot, and the run records how many it skipped; with
``catchup`` it runs every missed slot, oldest first, at most ``[plugin.schedule]
max_catchup`` of them (the newest ones). Time comes from a :class:`Clock`, so tests move
it without sleeping.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from opsloop.errors import OpsloopError, ParameterError, did_you_mean, one_line
from opsloop.names import safe_name
from opsloop.records import Schedule, ScheduleRun, Signal
from opsloop.schedule.cron import Cron, parse_time, slot_text

if TYPE_CHECKING:
    from opsloop.interfaces import JobKind
    from opsloop.project import Project
    from opsloop.schedule.settings import Settings
    from opsloop.store import Claim

#: The signal type a failed scheduled run emits (the ``schedule-failed`` alert rule's).
FAILED_SIGNAL = "schedule_failed"
#: Where the built-in plugin's settings live: ``[plugin.schedule]``.
PLUGIN = "schedule"


# ----------------------------------------------------------------------------- time
class Clock(Protocol):
    """Where the scheduler gets the time and waits; tests pass a fake one."""

    def now(self) -> datetime:
        """Now, timezone-aware."""
        ...

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds`` or until ``stop`` is set, whichever comes first."""
        ...


class SystemClock:
    """The real clock: UTC now, and waits that a stop request cuts short."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(max(0.0, seconds))


class Reporter(Protocol):
    """What the scheduler tells a person (the CLI prints status lines)."""

    def started(self, schedule: Schedule, slot: datetime, missed: int) -> None:
        """A claimed slot's job starts."""

    def finished(self, run: ScheduleRun) -> None:
        """A job ended (its run is recorded)."""

    def waiting(self, schedule: Schedule | None, at: datetime | None, seconds: float) -> None:
        """Nothing is due; the next is ``schedule`` at ``at`` (None: no schedule)."""


class SilentReporter:
    """A Reporter that says nothing: the default."""

    def started(self, schedule: Schedule, slot: datetime, missed: int) -> None:
        pass

    def finished(self, run: ScheduleRun) -> None:
        pass

    def waiting(self, schedule: Schedule | None, at: datetime | None, seconds: float) -> None:
        pass


def owner() -> str:
    """Who claims a slot: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def settings(project: Project) -> Settings:
    """``[plugin.schedule]``, or its defaults when the built-in plugin is disabled."""
    from opsloop.schedule.settings import Settings

    if project.plugins.info(PLUGIN) is None:
        return Settings()
    value = project.settings(PLUGIN)
    return value if isinstance(value, Settings) else Settings.model_validate(value)


# ----------------------------------------------------------------------------- job kinds
def job_kinds(project: Project) -> dict[str, JobKind]:
    """Every job kind plugins register (``register_job_kinds``), by name."""
    return {kind.name: kind for kind in project.collect("register_job_kinds")}


def get_kind(project: Project, name: str) -> JobKind:
    kinds = job_kinds(project)
    if name in kinds:
        return kinds[name]
    raise ParameterError(
        f"no job kind '{name}'"
        + did_you_mean(name, kinds)
        + f" (kinds: {', '.join(sorted(kinds)) or 'none'}); write --job KIND:TARGET, "
        "e.g. runbook:drift-triage or monitor:MODEL"
    )


def parse_job(text: str) -> tuple[str, str]:
    """``KIND:TARGET`` split (``runbook:weekly-report``, ``monitor:iris``, ``monitor:*``)."""
    kind, sep, target = str(text).partition(":")
    if not sep or not kind.strip() or not target.strip():
        raise ParameterError(
            f"--job '{text}' is not KIND:TARGET; e.g. runbook:drift-triage, monitor:MODEL "
            "or monitor:* (every served model)"
        )
    return kind.strip(), target.strip()


def job_text(schedule: Schedule) -> str:
    return f"{schedule.job}:{schedule.target}"


# ----------------------------------------------------------------------------- definitions
def definitions(project: Project) -> dict[str, Schedule]:
    """The newest Schedule record of every name ever used, removed ones included."""
    newest: dict[str, Schedule] = {}
    for record in project.records.list(Schedule):
        newest[record.name] = record
    return newest


def list_schedules(project: Project) -> list[Schedule]:
    """The schedules in force, by name."""
    return sorted((s for s in definitions(project).values() if not s.removed), key=lambda s: s.name)


def get_schedule(project: Project, name: str) -> Schedule:
    """The schedule called ``name``; an unknown name is a one-line error with a hint."""
    active = {s.name: s for s in list_schedules(project)}
    if name in active:
        return active[name]
    raise ParameterError(
        f"no schedule named '{name}'"
        + did_you_mean(name, active)
        + f" (schedules: {', '.join(active) or 'none'}; add one with `opsloop schedule add`)"
    )


def cron_of(schedule: Schedule) -> Cron:
    return Cron(schedule.cron, schedule.timezone)


def _shown(schedule: Schedule) -> dict[str, Any]:
    """A definition as the audit log keeps it."""
    return {
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "job": job_text(schedule),
        "parameters": schedule.parameters,
        "catchup": schedule.catchup,
    }


def add_schedule(
    project: Project,
    name: str,
    *,
    cron: str,
    job: str,
    parameters: dict[str, Any] | None = None,
    timezone: str | None = None,
    catchup: bool = False,
    description: str = "",
    replace: bool = False,
    now: datetime | None = None,
) -> Schedule:
    """Check and store a schedule (audited). Its first slot is the first after ``now``.

    ``job`` is ``KIND:TARGET``; the kind checks the target and parameters before anything
    is written. An existing name is refused unless ``replace``.
    """
    safe_name(name, "schedule name")
    kind_name, target = parse_job(job)
    kind = get_kind(project, kind_name)
    zone_name = timezone or settings(project).timezone
    checked = Cron(cron, zone_name)
    given = dict(parameters or {})
    stored = kind.check(project, target, given) if kind.check else given
    existing = definitions(project).get(name)
    if existing is not None and not existing.removed and not replace:
        raise OpsloopError(
            f"schedule '{name}' exists ({existing.cron!r}, {job_text(existing)}); pass "
            "--replace to change it, or `opsloop schedule remove` it first"
        )
    record = Schedule(
        name=name,
        cron=checked.expression,
        timezone=zone_name,
        job=kind_name,
        target=target,
        parameters=stored,
        catchup=catchup,
        description=description,
        actor=project.audit.actor,
        created_at=(now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
    )
    replaced = existing is not None and not existing.removed
    project.emit(
        record,
        "schedule.replace" if replaced else "schedule.add",
        name,
        before=_shown(existing) if replaced and existing else None,
        after={**_shown(record), "id": record.id},
    )
    return record


def remove_schedule(project: Project, name: str, *, now: datetime | None = None) -> Schedule:
    """End a schedule (audited): a Schedule record with ``removed`` set; its runs stay."""
    current = get_schedule(project, name)
    record = Schedule(
        name=name,
        cron=current.cron,
        timezone=current.timezone,
        job=current.job,
        target=current.target,
        parameters=current.parameters,
        catchup=current.catchup,
        removed=True,
        actor=project.audit.actor,
        created_at=(now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
    )
    project.emit(record, "schedule.remove", name, before=_shown(current), after=None)
    return record


# ----------------------------------------------------------------------------- claims
def claim_key(schedule: Schedule) -> str:
    """Claims are per definition: a replaced schedule starts afresh from its new record."""
    return f"schedule:{schedule.name}:{schedule.id}"


def last_claim(project: Project, schedule: Schedule) -> Claim | None:
    return project.records.last_claim(claim_key(schedule))


def _since(schedule: Schedule, last: str | None) -> datetime:
    """Slots after this are still to run: the newest claimed one, else the definition's time."""
    return parse_time(last) if last else parse_time(schedule.created_at)


def next_slot(project: Project, schedule: Schedule) -> datetime | None:
    """The schedule's next slot to run (in the past when it is overdue)."""
    claim = last_claim(project, schedule)
    return cron_of(schedule).after(_since(schedule, claim.slot if claim else None))


def claim_due(
    project: Project, schedule: Schedule, now: datetime, *, max_catchup: int | None = None
) -> tuple[datetime, int] | None:
    """Claim the slot to run now, if one is due: (slot, slots skipped), else None.

    Without catchup the newest due slot is claimed and older missed ones are skipped;
    with it the oldest due slot among the newest ``max_catchup``. The choice and the
    claim happen in one write transaction of the record store, so each slot is claimed by
    one process only.
    """
    cron = cron_of(schedule)
    limit = max_catchup or settings(project).max_catchup
    skipped = 0

    def choose(last: str | None) -> str | None:
        nonlocal skipped
        since = _since(schedule, last)
        first = cron.after(since)
        if first is None or first > now:
            return None
        if schedule.catchup:
            target = cron.newest(now, since, limit)[0]
        else:
            target = cron.at_or_before(now) or first
        skipped = cron.count(since, target)
        return slot_text(target)

    slot = project.records.claim(
        claim_key(schedule), choose, owner(), now.astimezone(UTC).isoformat()
    )
    return (parse_time(slot), skipped) if slot else None


# ----------------------------------------------------------------------------- runs
def run_job(
    project: Project,
    schedule: Schedule,
    slot: datetime,
    *,
    missed: int = 0,
    trigger: str = "due",
    clock: Clock | None = None,
) -> ScheduleRun:
    """Run one slot's job, record a ScheduleRun (audited), and emit a ``schedule_failed``
    signal when it failed. A job that raises is a failed run, never a crashed scheduler."""
    from opsloop.interfaces import JobOutcome, ScheduledJob

    clock = clock or SystemClock()
    started = clock.now()
    interrupted: KeyboardInterrupt | None = None
    try:
        kind = get_kind(project, schedule.job)
        job = ScheduledJob(
            schedule=schedule.name,
            target=schedule.target,
            parameters=dict(schedule.parameters),
            slot=slot.astimezone(UTC),
            trigger="manual" if trigger == "manual" else "due",
        )
        outcome = kind.run(project, job)
    except KeyboardInterrupt as exc:  # record the run, then stop as asked
        interrupted, outcome = exc, JobOutcome(ok=False, error="interrupted by the user")
    except Exception as exc:  # noqa: BLE001 - a job's failure is recorded, the loop goes on
        outcome = JobOutcome(ok=False, error=one_line(exc))
    run = ScheduleRun(
        schedule=schedule.name,
        schedule_id=schedule.id,
        slot=slot_text(slot),
        job=job_text(schedule),
        status="succeeded" if outcome.ok else "failed",
        started_at=started.astimezone(UTC).isoformat(timespec="microseconds"),
        finished_at=clock.now().astimezone(UTC).isoformat(timespec="microseconds"),
        summary=outcome.summary,
        error=None if outcome.ok else (outcome.error or "the job reported a failure"),
        record_id=outcome.record_id,
        missed=missed,
        trigger="manual" if trigger == "manual" else "due",
        host=owner(),
    )
    project.emit(
        run,
        "schedule.run",
        schedule.name,
        after={
            "run_id": run.id,
            "slot": run.slot,
            "job": run.job,
            "status": run.status,
            "record_id": run.record_id,
            "missed": missed,
            "trigger": run.trigger,
            "error": run.error,
        },
        actor="opsloop",
    )
    if not outcome.ok:
        project.emit(
            Signal(
                source="opsloop.schedule",
                type=FAILED_SIGNAL,
                severity="warning",
                subject=schedule.name,
                summary=f"scheduled job {run.job} ({schedule.name}) failed for {run.slot}: "
                f"{run.error}",
                data={
                    "schedule_run_id": run.id,
                    "schedule_id": schedule.id,
                    "slot": run.slot,
                    "job": run.job,
                    "record_id": run.record_id,
                },
            )
        )
    if interrupted is not None:
        raise interrupted
    return run


def run_due(
    project: Project,
    *,
    clock: Clock | None = None,
    names: Iterable[str] | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
) -> list[ScheduleRun]:
    """Run whatever is due now, once: each schedule's due slot (every missed one, oldest
    first, for a catchup schedule), claimed before it runs. Returns the runs, in order."""
    clock = clock or SystemClock()
    reporter = reporter or SilentReporter()
    schedules = list_schedules(project)
    if names is not None:
        wanted = list(names)
        schedules = [get_schedule(project, n) for n in wanted]
    limit = settings(project).max_catchup
    runs: list[ScheduleRun] = []
    pending = list(schedules)
    done: dict[str, int] = {}
    while pending and not (stop and stop.is_set()):
        still: list[Schedule] = []
        for schedule in pending:
            if stop and stop.is_set():
                break
            try:
                claimed = claim_due(project, schedule, clock.now(), max_catchup=limit)
            except sqlite3.OperationalError as exc:  # the store stayed locked past its timeout
                print(f"opsloop: warning: schedule '{schedule.name}' not claimed this round "
                      f"({exc}); it is tried again on the next", file=sys.stderr)  # fmt: skip
                continue
            if claimed is None:
                continue
            slot, missed = claimed
            reporter.started(schedule, slot, missed)
            run = run_job(project, schedule, slot, missed=missed, clock=clock)
            reporter.finished(run)
            runs.append(run)
            done[schedule.name] = done.get(schedule.name, 0) + 1
            # round-robin: a catchup schedule's next missed slot comes after the others'; at
            # most max_catchup per call, so jobs slower than their cron cannot loop forever
            if schedule.catchup and done[schedule.name] < limit:
                still.append(schedule)
        pending = still
    return runs


def run_now(
    project: Project, name: str, *, clock: Clock | None = None, reporter: Reporter | None = None
) -> ScheduleRun:
    """Run a schedule's job now, by hand (recorded as a manual run; no slot is claimed)."""
    clock = clock or SystemClock()
    schedule = get_schedule(project, name)
    slot = clock.now().astimezone(UTC).replace(microsecond=0)
    (reporter or SilentReporter()).started(schedule, slot, 0)
    run = run_job(project, schedule, slot, trigger="manual", clock=clock)
    (reporter or SilentReporter()).finished(run)
    return run


def next_due(project: Project) -> tuple[Schedule, datetime] | None:
    """The schedule due next and when."""
    best: tuple[Schedule, datetime] | None = None
    for schedule in list_schedules(project):
        try:
            when = next_slot(project, schedule)
        except OpsloopError:
            continue
        if when is not None and (best is None or when < best[1]):
            best = (schedule, when)
    return best


def scheduler(
    project: Project,
    *,
    clock: Clock | None = None,
    stop: threading.Event | None = None,
    poll: float | None = None,
    reporter: Reporter | None = None,
) -> int:
    """Run due schedules until ``stop`` is set; returns how many runs it made.

    Between rounds it sleeps until the next slot, at most ``poll`` seconds (default
    ``[plugin.schedule] poll``), so schedules added meanwhile are picked up.
    """
    clock = clock or SystemClock()
    stop = stop or threading.Event()
    reporter = reporter or SilentReporter()
    poll = poll if poll is not None else settings(project).poll_seconds
    count = 0
    while not stop.is_set():
        count += len(run_due(project, clock=clock, reporter=reporter, stop=stop))
        if stop.is_set():
            break
        upcoming = next_due(project)
        now = clock.now()
        if upcoming is None:
            wait = poll
            reporter.waiting(None, None, wait)
        else:
            wait = min(poll, max(0.0, (upcoming[1] - now).total_seconds()))
            reporter.waiting(upcoming[0], upcoming[1], wait)
        clock.sleep(wait, stop)
    return count


@dataclass
class ScheduleView:
    """A schedule with what ``schedule list`` shows: next slot, last run, unfinished claim."""

    schedule: Schedule
    explain: str
    next_slot: datetime | None
    last_run: ScheduleRun | None
    unfinished: str | None  # a claimed slot with no recorded run (its process died)
    error: str = ""


def describe(project: Project) -> list[ScheduleView]:
    """Every schedule in force with its next slot and last run."""
    runs: dict[str, ScheduleRun] = {}
    done: set[tuple[str, str]] = set()
    for run in project.records.list(ScheduleRun):
        runs[run.schedule] = run
        done.add((run.schedule_id, run.slot))
    views = []
    for schedule in list_schedules(project):
        try:
            cron = cron_of(schedule)
            claim = last_claim(project, schedule)
            upcoming = cron.after(_since(schedule, claim.slot if claim else None))
            open_claim = claim.slot if claim and (schedule.id, claim.slot) not in done else None
            views.append(
                ScheduleView(
                    schedule, cron.explain(), upcoming, runs.get(schedule.name), open_claim
                )
            )
        except OpsloopError as exc:
            views.append(ScheduleView(schedule, "", None, runs.get(schedule.name), None, str(exc)))
    return views


def schedule_runs(
    project: Project, name: str | None = None, limit: int | None = None
) -> list[ScheduleRun]:
    """Recorded runs, oldest first; of one schedule when ``name`` is given."""
    runs = [r for r in project.records.list(ScheduleRun) if name is None or r.schedule == name]
    return runs[-limit:] if limit else runs

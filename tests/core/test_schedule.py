"""Schedules: cron in a timezone, definitions as audited records, due slots claimed once,
the missed-run policy, failed runs as signals, and the scheduler loop — all on a fake
clock, so no test waits for a minute boundary."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop import hookimpl
from opsloop.errors import OpsloopError, ParameterError
from opsloop.interfaces import JobKind, JobOutcome, ScheduledJob
from opsloop.project import Project
from opsloop.records import Alert, Incident, Schedule, ScheduleRun, Signal
from opsloop.schedule import (
    Cron,
    add_schedule,
    describe,
    list_schedules,
    next_due,
    remove_schedule,
    run_due,
    run_now,
    scheduler,
)
from opsloop.schedule.engine import FAILED_SIGNAL, claim_key
from opsloop.testing import make_project

T0 = datetime(2026, 3, 2, 8, 59, 30, tzinfo=UTC)  # a Monday


class FakeClock:
    """Time that moves only when a test or the scheduler's sleep moves it."""

    def __init__(self, start: datetime, stop_at: datetime | None = None) -> None:
        self.t = start
        self.stop_at = stop_at
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=max(seconds, 0.0))
        if self.stop_at is not None and self.t >= self.stop_at:
            stop.set()

    def advance(self, **delta: float) -> None:
        self.t += timedelta(**delta)


class Notes:
    """A plugin with a job kind ``note`` that records what it was asked to run; the target
    ``boom`` raises, ``bad`` reports a failure."""

    def __init__(self, clock: FakeClock | None = None, takes: float = 3) -> None:
        self.calls: list[ScheduledJob] = []
        self.clock = clock
        self.takes = takes

    def _run(self, project: Any, job: ScheduledJob) -> JobOutcome:
        self.calls.append(job)
        if self.clock is not None:
            self.clock.advance(seconds=self.takes)  # a job takes time
        if job.target == "boom":
            raise RuntimeError("the job exploded")
        if job.target == "bad":
            return JobOutcome(ok=False, summary="checked", error="2 checks failed")
        return JobOutcome(ok=True, summary=f"noted {job.target}", record_id="rec_x")

    def _check(self, project: Any, target: str, parameters: dict[str, Any]) -> dict[str, Any]:
        if target == "nope":
            raise ParameterError("note: target 'nope' is refused")
        return {k: v.upper() if isinstance(v, str) else v for k, v in parameters.items()}

    @hookimpl
    def register_job_kinds(self, project: Any) -> list[JobKind]:
        return [JobKind(name="note", summary="record a note", run=self._run, check=self._check)]


@pytest.fixture
def notes() -> Notes:
    return Notes()


@pytest.fixture
def project(tmp_path: Path, notes: Notes) -> Project:
    return make_project(tmp_path / "p", notes)


def actions(project: Project) -> list[str]:
    return [e["action"] for e in project.audit.entries()]


def slots(runs: list[ScheduleRun]) -> list[str]:
    return [r.slot for r in runs]


# ----------------------------------------------------------------------------- cron
def test_cron_aliases_and_five_fields() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert Cron("@hourly").after(start) == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert Cron("@daily").after(start) == datetime(2026, 1, 2, 0, 0, tzinfo=UTC)
    assert Cron("@WEEKLY").after(start) == datetime(2026, 1, 4, 0, 0, tzinfo=UTC)  # a Sunday
    assert Cron("@monthly").after(start) == datetime(2026, 2, 1, tzinfo=UTC)
    assert Cron("@yearly").after(start) == Cron("@annually").after(start)
    assert Cron("0 9 * * 1-5").explain() == "At 09:00 on Monday through Friday"
    # strictly after, and at-or-before includes a slot that is exactly now
    nine = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    assert Cron("0 9 * * *").after(nine) == nine + timedelta(days=1)
    assert Cron("0 9 * * *").at_or_before(nine) == nine
    assert Cron("0 9 * * *").at_or_before(nine - timedelta(seconds=1)) == nine - timedelta(days=1)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * *", "cron expression '* * *' has 3 field(s); write five fields"),
        ("61 * * * *", "cron expression '61 * * * *': bad minute; write five fields"),
        ("@reboot", "cron expression '@reboot' is not a time opsloop can schedule"),
        ("* * */20 * 1L", "cron expression '* * */20 * 1L' never matches"),
        ("0 0 30 2 *", "cron expression '0 0 30 2 *': bad day-of-month"),
    ],
)
def test_bad_cron_is_one_line_saying_what_to_write(expression: str, message: str) -> None:
    with pytest.raises(ParameterError) as caught:
        Cron(expression)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_unknown_timezone_is_one_line() -> None:
    with pytest.raises(ParameterError, match="unknown timezone 'Mars/Olympus'; use an IANA name"):
        Cron("@daily", "Mars/Olympus")


def test_timezone_and_daylight_saving_follow_debian_cron() -> None:
    berlin = Cron("30 2 * * *", "Europe/Berlin")
    # 08:00 Berlin is 07:00 UTC in winter and 06:00 UTC in summer
    assert Cron("0 8 * * *", "Europe/Berlin").after(datetime(2026, 1, 1, tzinfo=UTC)) == (
        datetime(2026, 1, 1, 7, 0, tzinfo=UTC)
    )
    assert Cron("0 8 * * *", "Europe/Berlin").after(datetime(2026, 7, 1, tzinfo=UTC)) == (
        datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    )
    # 02:30 does not exist on 29 March 2026 in Berlin: Debian's cron runs it at 03:00 CEST
    first = berlin.after(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    second = berlin.after(first)  # type: ignore[arg-type]
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert second == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    # 02:30 happens twice on 25 October 2026: a fixed time runs once, at the first
    autumn = berlin.after(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert autumn == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert berlin.after(autumn) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # type: ignore[arg-type]
    # ... and a wildcard hour runs in both: 02:00 and 02:30 CEST, then CET
    half = Cron("*/30 * * * *", "Europe/Berlin")
    got = half.newest(datetime(2026, 10, 25, 1, 45, tzinfo=UTC), datetime(2026, 10, 24, 23, 50,
                      tzinfo=UTC), 10)  # fmt: skip
    assert [t.strftime("%H:%M") for t in got] == ["00:00", "00:30", "01:00", "01:30"]


# ----------------------------------------------------------------------------- definitions
def test_add_list_remove_are_records_and_audited(project: Project, notes: Notes) -> None:
    added = add_schedule(
        project,
        "weekly",
        cron="0 8 * * 1",
        job="note:report",
        parameters={"who": "ops"},
        timezone="Europe/Berlin",
        now=T0,
    )
    assert added.parameters == {"who": "OPS"}  # what the kind's check returned is stored
    assert [s.name for s in list_schedules(project)] == ["weekly"]
    checks = {c.name: c for group in project.hook.register_checks(project=project) for c in group}
    assert (
        checks["schedules"].ok and checks["schedules"].detail == "1 in force: weekly (note:report)"
    )
    assert actions(project) == ["schedule.add"]
    entry = list(project.audit.entries())[-1]
    assert entry["after"]["job"] == "note:report" and entry["after"]["timezone"] == "Europe/Berlin"

    with pytest.raises(OpsloopError, match=r"schedule 'weekly' exists .* pass --replace"):
        add_schedule(project, "weekly", cron="@daily", job="note:report", now=T0)
    replaced = add_schedule(project, "weekly", cron="@daily", job="note:x", replace=True, now=T0)
    assert list_schedules(project) == [replaced]
    assert actions(project)[-1] == "schedule.replace"
    assert list(project.audit.entries())[-1]["before"]["cron"] == "0 8 * * 1"

    remove_schedule(project, "weekly", now=T0)
    assert list_schedules(project) == []
    assert actions(project)[-1] == "schedule.remove"
    # nothing was rewritten: three definitions of the name are on record
    assert [s.removed for s in project.records.list(Schedule)] == [False, False, True]
    with pytest.raises(ParameterError, match="no schedule named 'weekly'"):
        remove_schedule(project, "weekly")


@pytest.mark.parametrize(
    ("name", "job", "message"),
    [
        ("../evil", "note:x", "schedule name '../evil' cannot be used as a file name"),
        ("ok", "nte:x", "no job kind 'nte'; did you mean 'note'?"),
        ("ok", "note", "--job 'note' is not KIND:TARGET"),
        ("ok", "note:nope", "note: target 'nope' is refused"),
        (
            "ok",
            "runbook:drift-triag",
            "no runbook named 'drift-triag'; did you mean 'drift-triage'?",
        ),
    ],
)
def test_bad_schedule_is_refused_before_anything_is_written(
    project: Project, name: str, job: str, message: str
) -> None:
    with pytest.raises(OpsloopError) as caught:
        add_schedule(project, name, cron="@daily", job=job)
    assert message in str(caught.value)
    assert project.records.list(Schedule) == [] and actions(project) == []


def test_runbook_parameters_are_checked_and_secrets_stored_only_as_env_refs(
    project: Project,
) -> None:
    with pytest.raises(ParameterError, match="has no parameter 'modle'; did you mean 'model'"):
        add_schedule(
            project, "t", cron="@daily", job="runbook:drift-triage", parameters={"modle": "x"}
        )
    nb = project.root / "notebooks" / "runbooks" / "with-secret.ipynb"
    write_notebook(nb, 'api_token: str = ""\ndays: int = 7\n', "print(days)")
    with pytest.raises(ParameterError, match="parameter 'days' must be int"):
        add_schedule(
            project, "t", cron="@daily", job="runbook:with-secret", parameters={"days": "x"}
        )
    with pytest.raises(
        ParameterError, match="'api_token' is secret and a schedule stores no secret"
    ):
        add_schedule(project, "t", cron="@daily", job="runbook:with-secret",
                     parameters={"api_token": "hunter2-real-token"})  # fmt: skip
    stored = add_schedule(project, "t", cron="@daily", job="runbook:with-secret",
                          parameters={"api_token": "env:API_TOKEN", "days": "3"})  # fmt: skip
    assert stored.parameters == {"api_token": "env:API_TOKEN", "days": 3}
    assert b"hunter2" not in (project.home / "records.sqlite").read_bytes()


# ----------------------------------------------------------------------------- due slots
def test_a_slot_runs_once_when_due_and_not_before(project: Project, notes: Notes) -> None:
    clock = FakeClock(T0)
    add_schedule(project, "hourly", cron="0 * * * *", job="note:a", now=T0)
    assert run_due(project, clock=clock) == []  # 08:59:30: the 09:00 slot is not due yet
    clock.advance(seconds=30)
    runs = run_due(project, clock=clock)
    assert slots(runs) == ["2026-03-02T09:00:00+00:00"]
    assert notes.calls[0].slot == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert notes.calls[0].parameters == {} and notes.calls[0].schedule == "hourly"
    clock.advance(minutes=20)
    assert run_due(project, clock=clock) == []  # the same slot never runs twice
    run = project.records.list(ScheduleRun)[0]
    assert (run.status, run.missed, run.record_id, run.trigger) == ("succeeded", 0, "rec_x", "due")
    assert run.summary == "noted a" and run.job == "note:a"
    assert "schedule.run" in actions(project)


def test_missed_slots_after_downtime_run_once_by_default(project: Project, notes: Notes) -> None:
    clock = FakeClock(T0)
    add_schedule(project, "hourly", cron="0 * * * *", job="note:a", now=T0)
    clock.advance(hours=5)  # down from 08:59:30 to 13:59:30: 09, 10, 11, 12 and 13 missed
    runs = run_due(project, clock=clock)
    assert slots(runs) == ["2026-03-02T13:00:00+00:00"]
    assert runs[0].missed == 4
    assert run_due(project, clock=clock) == []


def test_catchup_runs_every_missed_slot_oldest_first(project: Project, notes: Notes) -> None:
    clock = FakeClock(T0)
    add_schedule(project, "hourly", cron="0 * * * *", job="note:a", catchup=True, now=T0)
    clock.advance(hours=5)
    runs = run_due(project, clock=clock)
    assert slots(runs) == [f"2026-03-02T{h:02d}:00:00+00:00" for h in (9, 10, 11, 12, 13)]
    assert [r.missed for r in runs] == [0, 0, 0, 0, 0]
    assert run_due(project, clock=clock) == []


def test_catchup_is_capped_at_max_catchup_newest_slots(tmp_path: Path) -> None:
    notes = Notes()
    project = make_project(
        tmp_path / "p", notes, config='[project]\nname = "p"\n[plugin.schedule]\nmax_catchup = 2\n'
    )
    clock = FakeClock(T0)
    add_schedule(project, "hourly", cron="0 * * * *", job="note:a", catchup=True, now=T0)
    clock.advance(hours=5)
    runs = run_due(project, clock=clock)
    assert slots(runs) == ["2026-03-02T12:00:00+00:00", "2026-03-02T13:00:00+00:00"]
    assert [r.missed for r in runs] == [3, 0]


def test_catchup_jobs_slower_than_their_cron_end_after_max_catchup(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    notes = Notes(clock, takes=90)  # each job takes 90 s, the cron fires every minute
    config = '[project]\nname = "p"\n[plugin.schedule]\nmax_catchup = 5\n'
    project = make_project(tmp_path / "p", notes, config=config)
    add_schedule(project, "m", cron="* * * * *", job="note:a", catchup=True, now=T0)
    clock.advance(minutes=2)
    runs = run_due(project, clock=clock)  # new slots fall due faster than jobs end
    assert len(runs) == 5
    assert slots(runs)[:2] == ["2026-03-02T09:00:00+00:00", "2026-03-02T09:01:00+00:00"]


def test_replaced_schedule_starts_afresh_and_does_not_rerun_a_slot(
    project: Project, notes: Notes
) -> None:
    clock = FakeClock(T0 + timedelta(seconds=30))
    add_schedule(project, "s", cron="0 * * * *", job="note:a", now=T0)
    assert slots(run_due(project, clock=clock)) == ["2026-03-02T09:00:00+00:00"]
    clock.advance(minutes=10)
    add_schedule(project, "s", cron="0 * * * *", job="note:b", replace=True, now=clock.now())
    assert run_due(project, clock=clock) == []  # 09:00 ran before the replacement
    clock.advance(hours=1)
    assert [j.target for j in notes.calls] == ["a"]
    assert slots(run_due(project, clock=clock)) == ["2026-03-02T10:00:00+00:00"]
    assert [j.target for j in notes.calls] == ["a", "b"]


def test_removed_schedule_does_not_run(project: Project, notes: Notes) -> None:
    clock = FakeClock(T0)
    add_schedule(project, "s", cron="0 * * * *", job="note:a", now=T0)
    remove_schedule(project, "s", now=T0)
    clock.advance(hours=3)
    assert run_due(project, clock=clock) == [] and notes.calls == []


# ----------------------------------------------------------------------------- failures
@pytest.mark.parametrize(
    ("target", "error"), [("boom", "RuntimeError: the job exploded"), ("bad", "2 checks failed")]
)
def test_failed_run_is_recorded_and_becomes_a_signal_alert_and_incident(
    project: Project, target: str, error: str
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    add_schedule(project, "nightly", cron="0 * * * *", job=f"note:{target}", now=T0)
    (run,) = run_due(project, clock=clock)
    assert (run.status, run.error) == ("failed", error)
    (signal,) = project.records.list(Signal)
    assert (signal.type, signal.source, signal.subject) == (
        FAILED_SIGNAL,
        "opsloop.schedule",
        "nightly",
    )
    assert signal.data["schedule_run_id"] == run.id and signal.data["slot"] == run.slot
    assert error in signal.summary
    (alert,) = project.records.list(Alert)
    assert alert.rule == "schedule-failed" and alert.signal_ids == [signal.id]
    (incident,) = project.records.list(Incident)
    assert incident.subject == "nightly"
    # the scheduler goes on: the next slot runs again
    clock.advance(hours=1)
    assert len(run_due(project, clock=clock)) == 1


def test_a_job_kind_that_disappeared_is_a_failed_run_and_a_doctor_finding(
    tmp_path: Path,
) -> None:
    root = tmp_path / "p"
    add_schedule(make_project(root, Notes()), "s", cron="0 * * * *", job="note:a", now=T0)
    project = make_project(root)  # the plugin with the kind is gone
    checks = {c.name: c for group in project.hook.register_checks(project=project) for c in group}
    assert not checks["schedules"].ok and checks["schedules"].detail == "1 in force, 1 cannot run"
    assert "no job kind 'note'" in checks["schedule s"].detail
    (run,) = run_due(project, clock=FakeClock(T0 + timedelta(hours=1)))
    assert run.status == "failed" and "no job kind 'note'" in (run.error or "")


def test_run_now_is_a_manual_run_that_claims_no_slot(project: Project, notes: Notes) -> None:
    clock = FakeClock(T0)
    add_schedule(project, "s", cron="0 * * * *", job="note:a", now=T0)
    run = run_now(project, "s", clock=clock)
    assert run.trigger == "manual" and run.slot == "2026-03-02T08:59:30+00:00"
    assert project.records.claims(claim_key(list_schedules(project)[0])) == []
    clock.advance(minutes=1)
    assert len(run_due(project, clock=clock)) == 1  # the 09:00 slot still runs


# ----------------------------------------------------------------------------- the loop
class Lines:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def started(self, schedule: Schedule, slot: datetime, missed: int) -> None:
        self.events.append(("started", (schedule.name, slot.isoformat(), missed)))

    def finished(self, run: ScheduleRun) -> None:
        self.events.append(("finished", (run.schedule, run.status)))

    def waiting(self, schedule: Schedule | None, at: datetime | None, seconds: float) -> None:
        self.events.append(("waiting", (schedule.name if schedule else None, seconds)))


def test_scheduler_sleeps_until_the_next_slot_and_runs_each_once(tmp_path: Path) -> None:
    clock = FakeClock(T0, stop_at=T0 + timedelta(hours=2, minutes=10))
    notes = Notes(clock)  # each job takes 3 s of fake time
    project = make_project(tmp_path / "p", notes)
    add_schedule(project, "hourly", cron="0 * * * *", job="note:h", now=T0)
    add_schedule(project, "halfhour", cron="30 * * * *", job="note:m", now=T0)
    lines = Lines()
    stop = threading.Event()
    count = scheduler(project, clock=clock, stop=stop, poll=3600, reporter=lines)
    ran = [(j.target, j.slot.strftime("%H:%M")) for j in notes.calls]
    assert ran == [("h", "09:00"), ("m", "09:30"), ("h", "10:00"), ("m", "10:30"), ("h", "11:00")]
    assert count == 5
    # it slept until each slot (30 s to 09:00, then to 09:30 minus the job's 3 s, ...)
    assert clock.sleeps[:3] == [30.0, 1797.0, 1797.0]
    assert ("waiting", ("hourly", 30.0)) in lines.events
    assert ("started", ("hourly", "2026-03-02T09:00:00+00:00", 0)) in lines.events
    assert stop.is_set()


def test_scheduler_polls_for_new_schedules(tmp_path: Path) -> None:
    clock = FakeClock(T0, stop_at=T0 + timedelta(minutes=5))
    project = make_project(tmp_path / "p", Notes())
    lines = Lines()
    scheduler(project, clock=clock, poll=60, reporter=lines)
    assert clock.sleeps == [60.0] * 5  # nothing scheduled: it looks again every poll
    assert lines.events[0] == ("waiting", (None, 60.0))
    assert next_due(project) is None


def test_schedule_list_view_shows_next_slot_last_run_and_unfinished_claims(
    project: Project,
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    add_schedule(project, "s", cron="0 * * * *", job="note:a", now=T0)
    run_due(project, clock=clock)
    (view,) = describe(project)
    assert view.next_slot == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert view.last_run is not None and view.last_run.slot == "2026-03-02T09:00:00+00:00"
    assert view.unfinished is None and view.explain == "At the start of every hour"
    # a claim without a recorded run: a process that died mid-job
    schedule = list_schedules(project)[0]
    project.records.claim(claim_key(schedule), lambda last: "2026-03-02T10:00:00+00:00", "h:1", "x")
    assert describe(project)[0].unfinished == "2026-03-02T10:00:00+00:00"


def test_a_locked_store_skips_the_round_and_the_slot_runs_on_the_next(
    project: Project, notes: Notes, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    add_schedule(project, "s", cron="0 * * * *", job="note:a", now=T0)
    clock = FakeClock(T0 + timedelta(minutes=1))
    other = sqlite3.connect(project.home / "records.sqlite", timeout=0, isolation_level=None)
    project.records._db.execute("PRAGMA busy_timeout = 50")  # not 30 s in a test
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    assert run_due(project, clock=clock) == [] and notes.calls == []
    assert "schedule 's' not claimed this round (database is locked)" in capsys.readouterr().err
    other.execute("ROLLBACK")
    assert slots(run_due(project, clock=clock)) == ["2026-03-02T09:00:00+00:00"]


def test_claims_are_append_only(project: Project) -> None:
    project.records.claim("k", lambda last: "2026-01-01T00:00:00+00:00", "me", "now")
    assert project.records.claim("k", lambda last: None, "me", "now") is None
    with pytest.raises(Exception, match="UNIQUE constraint failed"):
        project.records.claim("k", lambda last: "2026-01-01T00:00:00+00:00", "other", "now")
    assert [c.owner for c in project.records.claims("k")] == ["me"]


# ----------------------------------------------------------------------------- the hook
def test_hook_register_job_kinds(tmp_path: Path) -> None:
    """A plugin's job kind can be scheduled, is run through run_due with the slot and the
    stored parameters, and a kind name is unique (the plugin called first keeps it)."""

    class Shadow:
        @hookimpl(trylast=True)
        def register_job_kinds(self, project: Any) -> list[JobKind]:
            return [JobKind(name="note", summary="shadowed", run=lambda p, j: JobOutcome(ok=False))]

    notes = Notes()
    project = make_project(tmp_path / "p", Shadow(), notes)
    from opsloop.schedule import job_kinds

    kinds = job_kinds(project)
    assert {"runbook", "monitor", "note"} <= set(kinds)
    assert kinds["note"].summary == "record a note"
    assert [s.dropped_from for s in project.shadowed("register_job_kinds")] != []
    add_schedule(project, "n", cron="*/15 * * * *", job="note:t", parameters={"a": "b"}, now=T0)
    (run,) = run_due(project, clock=FakeClock(T0 + timedelta(minutes=1)))
    assert run.status == "succeeded"
    assert notes.calls[0].parameters == {"a": "B"}
    assert notes.calls[0].slot == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def write_notebook(path: Path, params: str, *cells: str) -> Path:
    """A runbook notebook: a cell tagged ``parameters``, then ``cells`` (plain nbformat 4
    JSON, written without importing nbformat, which is slow to import under pytest)."""

    def cell(source: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {"cell_type": "code", "execution_count": None, "outputs": [],
                "metadata": {"tags": tags or []}, "source": source}  # fmt: skip

    nb = {
        "cells": [cell(params, ["parameters"]), *(cell(c) for c in cells)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path

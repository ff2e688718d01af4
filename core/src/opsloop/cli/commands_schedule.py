"""`opsloop schedule add|list|remove|runs|run|run-due|export` and `opsloop scheduler`."""

from __future__ import annotations

import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsloop.cli import context
from opsloop.errors import ParameterError

if TYPE_CHECKING:
    from opsloop.records import Schedule, ScheduleRun

schedule_app = typer.Typer(
    help="Cron schedules for runbooks, reports and monitor checks.", no_args_is_help=True
)
export_app = typer.Typer(help="Export the schedules to another scheduler.", no_args_is_help=True)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"parameter '{pair}' is not KEY=VALUE")
        out[key.strip()] = value
    return out


def _local(when: datetime | None, timezone: str) -> str:
    """``2026-12-08 09:00 CET`` in the schedule's timezone."""
    if when is None:
        return "-"
    from opsloop.schedule.cron import zone

    local = when.astimezone(zone(timezone))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or timezone)


def _ago(when: datetime, now: datetime) -> str:
    seconds = int((when - now).total_seconds())
    sign, seconds = ("in ", seconds) if seconds >= 0 else ("", -seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours
            else f"{minutes}m {secs}s" if minutes else f"{secs}s")  # fmt: skip
    return f"{sign}{text}" + ("" if sign else " ago")


def _run_dict(run: ScheduleRun) -> dict[str, Any]:
    return run.to_dict()


@schedule_app.command("add")
def schedule_add(
    name: str,
    cron: str = typer.Option(..., "--cron", "-c", help="Five cron fields or @hourly, @daily..."),
    job: str = typer.Option(
        ..., "--job", "-j", help="KIND:TARGET, e.g. runbook:drift-triage, monitor:MODEL, monitor:*"
    ),
    param: list[str] = typer.Option([], "--param", "-P", help="KEY=VALUE; repeat for more."),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="IANA timezone of the cron expression.",
        show_default="[plugin.schedule] timezone",
    ),
    catchup: bool = typer.Option(
        False, "--catchup", help="After downtime run every missed slot, not only the newest."
    ),
    description: str = typer.Option("", "--description", help="What it is for."),
    replace: bool = typer.Option(False, "--replace", help="Replace a schedule of that name."),
    as_json: bool = typer.Option(False, "--json", help="Print the schedule record as JSON."),
) -> None:
    """Add a schedule (audited): when (cron, timezone) and what (a job and its parameters)."""
    from opsloop.schedule import add_schedule, next_slot
    from opsloop.schedule.engine import cron_of, job_text

    project = context.open_project()
    record = add_schedule(
        project,
        name,
        cron=cron,
        job=job,
        parameters=_parse_params(param),
        timezone=tz,
        catchup=catchup,
        description=description,
        replace=replace,
    )
    if as_json:
        context.print_json(record.to_dict())
        return
    explain = cron_of(record).explain()
    context.console.print(
        f"schedule {record.name}: {job_text(record)} at '{record.cron}'"
        + (f" ({explain})" if explain else "")
        + f" {record.timezone}; next run {_local(next_slot(project, record), record.timezone)}",
        highlight=False,
    )


@schedule_app.command("list")
def schedule_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The schedules in force: job, cron and timezone, next run, last run."""
    from rich.table import Table
    from rich.text import Text

    from opsloop.schedule import describe
    from opsloop.schedule.engine import job_text

    project = context.open_project()
    views = describe(project)
    if as_json:
        context.print_json(
            [
                {
                    **v.schedule.to_dict(),
                    "explain": v.explain,
                    "next_slot": v.next_slot.isoformat() if v.next_slot else None,
                    "last_run": v.last_run.to_dict() if v.last_run else None,
                    "unfinished_slot": v.unfinished,
                    "error": v.error or None,
                }
                for v in views
            ]
        )
        return
    if not views:
        context.console.print("no schedules; add one with `opsloop schedule add`")
        return
    now = datetime.now(UTC)
    table = Table(title=f"{len(views)} schedule(s)", title_justify="left")
    for col in ("name", "job", "when", "next run", "last run"):
        table.add_column(col, overflow="fold")
    for v in views:
        s = v.schedule
        when = f"{s.cron} {s.timezone}" + (f"\n{v.explain}" if v.explain else "")
        when += "\ncatchup" if s.catchup else ""
        upcoming = Text(v.error, "red") if v.error else Text(_local(v.next_slot, s.timezone))
        if v.next_slot and not v.error:
            upcoming.append(f"\n{_ago(v.next_slot, now)}", "dim")
        last = Text("-")
        if v.last_run:
            r = v.last_run
            last = Text.assemble(
                (r.status, "green" if r.status == "succeeded" else "bold red"),
                f" {_local(datetime.fromisoformat(r.slot), s.timezone)}",
            )
        if v.unfinished:
            last.append(
                f"\nslot {v.unfinished} claimed, no run recorded (running or died)", "yellow"
            )
        table.add_row(s.name, job_text(s), when, upcoming, last)
    context.console.print(table)


@schedule_app.command("remove")
def schedule_remove(name: str) -> None:
    """Remove a schedule (audited); its recorded runs stay."""
    from opsloop.schedule import remove_schedule

    remove_schedule(context.open_project(), name)
    context.console.print(f"schedule {name} removed", highlight=False)


@schedule_app.command("runs")
def schedule_runs_command(
    name: str | None = typer.Argument(None, help="Only this schedule's runs."),
    limit: int = typer.Option(20, "--limit", "-n", help="Newest N runs (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Recorded runs: schedule, slot, status, how long, the record the job wrote."""
    from rich.table import Table
    from rich.text import Text

    from opsloop.schedule import schedule_runs

    runs = schedule_runs(context.open_project(), name, limit or None)
    if as_json:
        context.print_json([_run_dict(r) for r in runs])
        return
    table = Table(title="schedule runs", title_justify="left")
    for col in ("schedule", "slot (UTC)", "status", "took", "record", "summary / error"):
        table.add_column(col, overflow="fold")
    for r in runs:
        took = datetime.fromisoformat(r.finished_at) - datetime.fromisoformat(r.started_at)
        status = Text(r.status, "green" if r.status == "succeeded" else "bold red")
        if r.missed:
            status.append(f"\n{r.missed} missed", "yellow")
        if r.trigger == "manual":
            status.append("\nmanual", "dim")
        table.add_row(r.schedule, r.slot[:16].replace("T", " "), status,
                      f"{took.total_seconds():.1f}s", r.record_id or "-",
                      r.error or r.summary)  # fmt: skip
    context.console.print(table)


class _Lines:
    """The scheduler's status lines: one per start and end, and what comes next."""

    def __init__(self, waiting: bool = True) -> None:
        self.show_waiting = waiting
        self.last_wait: tuple[str, str] | None = None
        self.failed = 0
        self.runs = 0

    def _stamp(self) -> str:
        return datetime.now(UTC).strftime("%H:%M:%S")

    def started(self, schedule: Schedule, slot: datetime, missed: int) -> None:
        from rich.text import Text

        from opsloop.schedule.engine import job_text

        text = Text.assemble(
            f"{self._stamp()} ", ("▶ ", "cyan"), (schedule.name, "bold"),
            f" {job_text(schedule)} for {_local(slot, schedule.timezone)}",
        )  # fmt: skip
        if missed:
            text.append(f" ({missed} missed slot(s) skipped)", "yellow")
        context.console.print(text, highlight=False)
        self.last_wait = None

    def finished(self, run: ScheduleRun) -> None:
        from rich.text import Text

        took = datetime.fromisoformat(run.finished_at) - datetime.fromisoformat(run.started_at)
        ok = run.status == "succeeded"
        self.failed += not ok
        self.runs += 1
        text = Text.assemble(
            f"{self._stamp()} ",
            ("✓ " if ok else "✗ ", "green" if ok else "bold red"),
            (run.schedule, "bold"),
            f" {run.status} in {took.total_seconds():.1f}s",
            f" ({run.record_id})" if run.record_id else "",
        )
        detail = run.summary if ok else run.error
        if detail:
            text.append(f": {detail}", "" if ok else "red")
        context.console.print(text, highlight=False)

    def waiting(self, schedule: Schedule | None, at: datetime | None, seconds: float) -> None:
        if not self.show_waiting:
            return
        if schedule is None or at is None:
            key = ("", "")
            line = "no schedules; waiting for one to be added (`opsloop schedule add`)"
        else:
            key = (schedule.name, at.isoformat())
            line = (f"next: {schedule.name} at {_local(at, schedule.timezone)} "
                    f"({_ago(at, datetime.now(UTC))})")  # fmt: skip
        if key != self.last_wait:  # one line per new "next", not one per poll
            context.console.print(f"{self._stamp()} {line}", style="dim", highlight=False)
            self.last_wait = key


@schedule_app.command("run-due")
def schedule_run_due(
    name: list[str] = typer.Option([], "--name", help="Only these schedules; repeat for more."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """Run whatever is due now, once, then exit (for system cron or CI).

    Each due slot is claimed in the record store before it runs, so several run-due (or
    schedulers) at once never run a slot twice. Exit 1 when a run failed.
    """
    from opsloop.schedule import run_due

    project = context.open_project()
    lines = _Lines(waiting=False)
    runs = run_due(project, names=name or None, reporter=None if as_json else lines)
    if as_json:
        context.print_json([_run_dict(r) for r in runs])
    elif not runs:
        context.console.print("nothing due")
    if any(r.status != "succeeded" for r in runs):
        raise typer.Exit(1)


@schedule_app.command("run")
def schedule_run(
    name: str,
    as_json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Run one schedule's job now, by hand (recorded as a manual run). Exit 1 if it failed."""
    from opsloop.schedule import run_now

    lines = _Lines(waiting=False)
    run = run_now(context.open_project(), name, reporter=None if as_json else lines)
    if as_json:
        context.print_json(_run_dict(run))
    if run.status != "succeeded":
        raise typer.Exit(1)


@export_app.command("airflow")
def export_airflow(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the DAG file here."),
    name: list[str] = typer.Option([], "--name", help="Only these schedules; repeat for more."),
    opsloop_bin: str = typer.Option(
        "opsloop", "--opsloop", help="The opsloop command on the Airflow workers."
    ),
    project_dir: str | None = typer.Option(
        None,
        "--project-dir",
        help="The project's folder on the workers.",
        show_default="this project's",
    ),
) -> None:
    """Write an Airflow DAG file: one DAG per schedule, each a BashOperator running the same
    job with the opsloop CLI (runbooks and reports: `opsloop runbook run`, papermill)."""
    from opsloop.schedule.airflow import export

    text = export(
        context.open_project(),
        out,
        opsloop=opsloop_bin,
        project_dir=project_dir,
        names=name or None,
    )
    if out is None:
        sys.stdout.write(text)
    else:
        context.console.print(f"wrote {out}", highlight=False)


def scheduler_command(
    poll: str | None = typer.Option(
        None,
        "--poll",
        help="Longest sleep before schedules are re-read.",
        show_default="[plugin.schedule] poll",
    ),
) -> None:
    """Run schedules on this machine until stopped (Ctrl-C or SIGTERM): each due slot once,
    even with other schedulers running; missed slots as docs/scheduling.md says."""
    import threading

    from opsloop.durations import parse_duration
    from opsloop.errors import OpsloopError
    from opsloop.schedule import list_schedules, scheduler

    project = context.open_project()
    seconds = None
    if poll is not None:
        try:
            seconds = parse_duration(poll)
        except ValueError as exc:
            raise OpsloopError(f"--poll: {exc}") from None
    stop = threading.Event()
    lines = _Lines()

    def terminate(signum: int, _frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C interrupts the running job
        stop.set()
        print("opsloop: stopping after the running job (Ctrl-C again to interrupt it)",
              file=sys.stderr)  # fmt: skip

    previous = {s: signal.signal(s, terminate) for s in (signal.SIGTERM, signal.SIGINT)}
    count = len(list_schedules(project))
    context.console.print(
        f"scheduler for {project.root} ({count} schedule(s)); Ctrl-C or SIGTERM stops",
        highlight=False,
    )
    try:
        scheduler(project, stop=stop, poll=seconds, reporter=lines)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    context.console.print(
        f"scheduler stopped: {lines.runs} run(s), {lines.failed} failed", highlight=False
    )


def register_cli(app: typer.Typer) -> None:
    schedule_app.add_typer(export_app, name="export")
    app.add_typer(schedule_app, name="schedule")
    app.command("scheduler")(scheduler_command)

"""Built-in plugin: schedules (``opsloop schedule ...``, ``opsloop scheduler``), the
``runbook`` job kind, and the alert rule for a failed scheduled run (see opsloop.schedule)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import AlertRule, CheckResult, PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import JobKind
    from opsloop.project import Project


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="schedule",
        stage="respond",
        summary="cron schedules for runbooks, reports and monitor checks; scheduler; "
        "Airflow export",
        config_model="opsloop.schedule.settings:Settings",
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli.commands_schedule import register_cli

    register_cli(cli)


@hookimpl
def register_job_kinds(project: Project) -> list[JobKind]:
    from opsloop.schedule.kinds import RUNBOOK

    return [RUNBOOK]


@hookimpl
def register_alert_rules(project: Project) -> list[AlertRule]:
    from opsloop.schedule.engine import FAILED_SIGNAL

    return [AlertRule(name="schedule-failed", signal_type=FAILED_SIGNAL)]


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    """Every schedule can run: its cron expression and timezone parse, its job kind exists."""
    from opsloop.errors import OpsloopError
    from opsloop.schedule.engine import cron_of, get_kind, job_text, list_schedules

    if project.detached:
        return []
    results = []
    try:
        schedules = list_schedules(project)
    except OpsloopError as exc:
        return [CheckResult("schedules", False, str(exc), "schedule")]
    for schedule in schedules:
        try:
            cron_of(schedule)
            get_kind(project, schedule.job)
        except OpsloopError as exc:
            results.append(CheckResult(f"schedule {schedule.name}", False, str(exc), "schedule"))
    bad = len(results)
    summary = f"{len(schedules)} in force" + (f", {bad} cannot run" if bad else "")
    if schedules and not bad:
        summary += ": " + ", ".join(f"{s.name} ({job_text(s)})" for s in schedules[:5])
    return [CheckResult("schedules", not bad, summary, "schedule"), *results]

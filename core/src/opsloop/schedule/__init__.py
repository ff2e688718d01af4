"""Scheduled runbooks, reports, monitor checks and plugin jobs (``opsloop schedule``,
``opsloop scheduler``), and their export as Airflow DAGs. See docs/scheduling.md."""

from __future__ import annotations

from opsloop.schedule.cron import ALIASES, Cron
from opsloop.schedule.engine import (
    FAILED_SIGNAL,
    Clock,
    Reporter,
    ScheduleView,
    SilentReporter,
    SystemClock,
    add_schedule,
    claim_due,
    describe,
    get_schedule,
    job_kinds,
    list_schedules,
    next_due,
    next_slot,
    remove_schedule,
    run_due,
    run_job,
    run_now,
    schedule_runs,
    scheduler,
)

__all__ = [
    "ALIASES",
    "FAILED_SIGNAL",
    "Clock",
    "Cron",
    "Reporter",
    "ScheduleView",
    "SilentReporter",
    "SystemClock",
    "add_schedule",
    "claim_due",
    "describe",
    "get_schedule",
    "job_kinds",
    "list_schedules",
    "next_due",
    "next_slot",
    "remove_schedule",
    "run_due",
    "run_job",
    "run_now",
    "schedule_runs",
    "scheduler",
]

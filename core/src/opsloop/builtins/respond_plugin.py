"""Built-in plugin: signals -> alert rules -> alerts -> incidents (see opsloop.respond), and
``opsloop incident``, ``opsloop runbook`` and ``opsloop signals``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import AlertRule, PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.project import Project
    from opsloop.records import Record


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="respond", stage="respond", summary="alert rules, incidents, runbook commands"
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli.commands_respond import register_cli

    register_cli(cli)


@hookimpl
def register_alert_rules(project: Project) -> list[AlertRule]:
    """The built-in rules for every kind of failure (the table in docs/alerts.md)."""
    return [
        AlertRule(name="model-drift", signal_type="drift", runbook="drift-triage"),
        # a spike: 5 blocks of one target within 5 minutes, at most one alert per 5 minutes
        AlertRule(name="guard-block-spike", signal_type="guard_block", runbook="guard-incident",
                  threshold=5, window=300, rate_limit=(1, 300)),
        AlertRule(name="load-failed", signal_type="load_failed", severity="critical",
                  runbook="load-failure", group_window=3600),
        AlertRule(name="artifact-integrity", signal_type="integrity", severity="critical",
                  runbook="integrity-failure"),
        AlertRule(name="serving-errors", signal_type="serving_errors", severity="critical",
                  runbook="rollback", group_window=1800),
        AlertRule(name="serving-latency", signal_type="serving_latency", group_window=1800),
        AlertRule(name="slo-burn", signal_type="slo_burn", runbook="rollback",
                  dedup_key="{rule}\x1f{subject}\x1f{label[slo]}", group_window=1800),
        AlertRule(name="runbook-failed", signal_type="runbook_failed", rate_limit=(10, 3600)),
        AlertRule(name="prometheus-alert", signal_type="prometheus",
                  dedup_key="{rule}\x1f{label[alertname]}\x1f{subject}"),
    ]  # fmt: skip


@hookimpl
def on_record(project: Project, record: Record) -> None:
    from opsloop.records import Signal
    from opsloop.respond import evaluate_signal

    if isinstance(record, Signal):
        evaluate_signal(project, record)

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
    return [AlertRule(name="model-drift", signal_type="drift", runbook="drift-triage")]


@hookimpl
def on_record(project: Project, record: Record) -> None:
    from opsloop.records import Signal
    from opsloop.respond import evaluate_signal

    if isinstance(record, Signal):
        evaluate_signal(project, record)

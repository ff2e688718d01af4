"""Built-in plugin: automated retraining on drift and quality signals (see opsloop.retrain),
and ``opsloop retrain NAME``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.project import Project
    from opsloop.records import Record


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="retrain",
        stage="respond",
        summary="retrain, canary and promote or roll back on drift and quality signals",
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli.commands_retrain import register_cli

    register_cli(cli)


@hookimpl(trylast=True)  # after the alert rules: the incident opens before the run starts
def on_record(project: Project, record: Record) -> None:
    from opsloop.records import Signal

    if isinstance(record, Signal) and record.subject in project.config.respond.retrain:
        from opsloop.retrain import on_signal

        on_signal(project, record)

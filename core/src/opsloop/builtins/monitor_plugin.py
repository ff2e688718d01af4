"""Built-in plugin: the ``profile`` drift detector, reference profiles at registration, the
alert rules for data-quality and model-quality signals (see opsloop.drift), and
``opsloop monitor profile | check | watch``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import AlertRule, PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import DriftDetector, JobKind
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="monitor",
        stage="monitor",
        summary="drift against stored reference profiles, data and model quality; "
        "monitor profile/check/watch commands",
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli.commands_monitor import register_cli

    register_cli(cli)


@hookimpl
def register_drift_detectors(project: Project) -> list[DriftDetector]:
    from opsloop.drift import DriftSettings, ProfileDetector

    settings = project.config.monitor
    return [ProfileDetector(DriftSettings.from_config(settings), bins=settings.bins)]


@hookimpl
def after_register(project: Project, ref: ModelVersionRef) -> None:
    """Profile the training data the new version records (``[monitor] profile_on_register``)."""
    from opsloop.reference import profile_on_register

    profile_on_register(project, ref)


@hookimpl
def register_alert_rules(project: Project) -> list[AlertRule]:
    return [
        AlertRule(name="data-quality", signal_type="data_quality"),
        AlertRule(name="model-quality", signal_type="model_quality"),
    ]


@hookimpl
def register_job_kinds(project: Project) -> list[JobKind]:
    """``monitor:MODEL`` (one check) and ``monitor:*`` (one watch round) for schedules."""
    from opsloop.schedule.kinds import MONITOR

    return [MONITOR]

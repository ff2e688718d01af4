"""opsloop plugin entry point for Prometheus: monitor metrics, rules, dashboard, doctor.

This module imports no prometheus_client, yaml or pandas: hook bodies import what they need.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import CheckResult, DriftResult
    from opsloop.project import Project
    from opsloop.quality import QualityResult
    from opsloop_prometheus.state import MonitorState

NAME = "prometheus"
logger = logging.getLogger(__name__)


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="monitor",
        summary="drift, data-quality and model-quality metrics for Prometheus; SLO "
        "burn-rate alerting rules; a Grafana dashboard",
        config_model="opsloop_prometheus.settings:Settings",
        vendor_packages=("prometheus_client", "yaml"),
    )


def _state(project: Project) -> MonitorState | None:
    """The project's state file, or None for a detached project (it writes nothing)."""
    if project.detached:
        return None
    from opsloop_prometheus.state import MonitorState

    return project.memo("prometheus.state", lambda: MonitorState.of(project.home))


@hookimpl
def after_drift_check(project: Project, model: str, result: DriftResult) -> None:
    """Keep the check's figures for /metrics; a failure to write them never fails the check."""
    state = _state(project)
    if state is None:
        return
    try:
        state.record_drift(model, result)
    except OSError as exc:
        logger.warning("could not keep the drift metrics of %s: %s", model, exc)


@hookimpl
def after_quality_check(project: Project, model: str, result: QualityResult) -> None:
    """Keep the comparison's figures for /metrics."""
    state = _state(project)
    if state is None:
        return
    try:
        state.record_quality(model, result)
    except OSError as exc:
        logger.warning("could not keep the model-quality metrics of %s: %s", model, exc)


@hookimpl
def register_metrics(project: Project) -> list[Any]:
    """The monitor collector, served by the scoring app's /metrics and by the exporter."""
    state = _state(project)
    if state is None:
        return []
    from opsloop_prometheus.collector import MonitorCollector

    settings = project.settings(NAME)
    return [MonitorCollector(state, feature_metrics=settings.feature_metrics)]


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop_prometheus.cli import register

    register(cli)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_prometheus.checks import checks

    return checks(project)

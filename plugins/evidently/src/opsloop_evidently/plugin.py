"""opsloop plugin entry point for Evidently: drift detectors, `opsloop monitor drift`, doctor.

This module imports no vendor SDK, pandas or numpy: hook bodies import what they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import CheckResult, DriftDetector
    from opsloop.project import Project
    from opsloop_evidently.settings import Settings

NAME = "evidently"
#: The share of drifted columns that makes a dataset drift, unless configured.
DEFAULT_DRIFT_SHARE = 0.5


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="monitor",
        summary="data drift: Evidently reports and a light PSI/KS detector",
        config_model="opsloop_evidently.settings:Settings",
        vendor_packages=("evidently",),
    )


@hookimpl
def register_drift_detectors(project: Project) -> list[DriftDetector]:
    from opsloop_evidently.detector import EvidentlyDriftDetector
    from opsloop_evidently.psi_ks import PsiKsDetector

    settings: Settings = project.settings(NAME)
    share = settings.drift_share
    if share is None:
        share = project.config.monitor.drift_share or DEFAULT_DRIFT_SHARE
    return [
        EvidentlyDriftDetector(share, method=settings.method, threshold=settings.threshold),
        PsiKsDetector(
            share,
            alpha=settings.ks_alpha,
            psi_threshold=settings.psi_threshold,
            max_bins=settings.psi_bins,
        ),
    ]


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop_evidently.cli import register

    register(cli)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_evidently.checks import checks

    return checks(project)

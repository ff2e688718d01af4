"""The monitor stage, as the core runs it: pick a drift detector, run it, emit a signal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, did_you_mean
from opsloop.names import safe_name
from opsloop.records import Signal

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.interfaces import DriftDetector, DriftResult
    from opsloop.project import Project


def list_detectors(project: Project) -> list[DriftDetector]:
    """Every drift detector plugins register (one per name: see opsloop.registrations)."""
    return project.collect("register_drift_detectors")


def get_detector(project: Project, name: str | None = None) -> DriftDetector:
    """The detector named (or ``[monitor] detector``, or the first registered)."""
    detectors = list_detectors(project)
    if not detectors:
        raise OpsloopError(
            "no drift detector is installed; install one, e.g. `pip install opsloop-evidently`"
        )
    wanted = name or project.config.monitor.detector
    if not wanted:
        return detectors[0]
    by_name = {d.name: d for d in detectors}
    if wanted not in by_name:
        raise OpsloopError(
            f"no drift detector named '{wanted}'"
            + did_you_mean(wanted, by_name)
            + f" (detectors: {', '.join(sorted(by_name))})"
        )
    return by_name[wanted]


def check_drift(
    project: Project,
    model: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    detector: str | None = None,
    columns: list[str] | None = None,
    window: str = "",
    lineage: dict[str, Any] | None = None,
    report_dir: Path | None = None,
) -> tuple[DriftResult, Signal | None]:
    """Compare ``current`` with ``reference``; a drifted result is emitted as a Signal.

    Reports go to ``report_dir`` (default: ``<home>/reports/drift/<model>/``; a detached
    project writes a report only where ``report_dir`` says).
    """
    chosen = get_detector(project, detector)
    if report_dir is None and not project.detached:
        report_dir = project.path("reports", "drift", safe_name(model, "model"), "x").parent
    result = chosen.detect(reference, current, columns=columns, report_dir=report_dir)
    signal = None
    if result.drifted:
        drifted = [f for f in result.features if f.drifted]
        share = result.share_drifted
        signal = Signal(
            source=f"monitor.{result.detector}",
            type="drift",
            severity="critical" if share >= 0.75 else "warning",
            subject=model,
            summary=(
                f"{len(drifted)} of {len(result.features)} features drifted "
                f"({share:.0%}) for model '{model}'" + (f" in window {window}" if window else "")
            ),
            value=share,
            threshold=project.config.monitor.drift_share,
            data={
                "detector": result.detector,
                "window": window,
                "features": [vars(f) for f in result.features],
                "report_path": str(result.report_path) if result.report_path else None,
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "lineage": lineage or {},
            },
        )
        project.emit(signal)
    project.hook.after_drift_check(project=project, model=model, result=result)
    return result, signal

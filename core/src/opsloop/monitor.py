"""The monitor stage, as the core runs it: pick a drift detector, run it, emit signals.

The reference is a frame or a stored :class:`~opsloop.profiles.ReferenceProfile`; a
profile needs a detector with ``check`` (the built-in ``profile`` detector has one). A
drifted result becomes a ``drift`` Signal, data-quality findings of severity warning or
above a ``data_quality`` Signal; then ``after_drift_check`` runs, drifted or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, did_you_mean
from opsloop.names import safe_name
from opsloop.records import SEVERITIES, Signal

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.interfaces import DriftDetector, DriftResult
    from opsloop.profiles import ReferenceProfile
    from opsloop.project import Project

#: Share of drifted features from which a drift signal is critical.
CRITICAL_SHARE = 0.75


def list_detectors(project: Project) -> list[DriftDetector]:
    """Every drift detector plugins register (one per name: see opsloop.registrations)."""
    return project.collect("register_drift_detectors")


def get_detector(project: Project, name: str | None = None) -> DriftDetector:
    """The detector named (or ``[monitor] detector``, or the first registered)."""
    detectors = list_detectors(project)
    if not detectors:
        raise OpsloopError(
            "no drift detector is registered; the built-in 'profile' detector is missing, "
            "check OPSLOOP_DISABLE_PLUGINS and [plugins] disabled"
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


@dataclass
class DriftCheck:
    """A drift check's result and the signals it emitted."""

    result: DriftResult
    drift_signal: Signal | None = None
    quality_signal: Signal | None = None

    @property
    def signals(self) -> list[Signal]:
        return [s for s in (self.drift_signal, self.quality_signal) if s is not None]


def run_check(
    project: Project,
    model: str,
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    *,
    detector: str | None = None,
    columns: list[str] | None = None,
    window: str = "",
    lineage: dict[str, Any] | None = None,
    report_dir: Path | None = None,
) -> DriftCheck:
    """Compare ``current`` with ``reference`` (a frame or a stored profile) and emit signals.

    Reports go to ``report_dir`` (default: ``<home>/reports/drift/<model>/``).
    """
    from opsloop.profiles import ReferenceProfile

    chosen = get_detector(project, detector)
    if isinstance(reference, ReferenceProfile):
        check = getattr(chosen, "check", None)
        if not callable(check):
            raise OpsloopError(
                f"drift detector '{chosen.name}' needs the reference data itself, not a stored "
                "profile; use the 'profile' detector or pass the reference data"
            )
        result: DriftResult = check(reference, current, columns=columns)
    else:
        if report_dir is None and not project.detached:  # detached: reports only if asked
            report_dir = project.path("reports", "drift", safe_name(model, "model"), "x").parent
        result = chosen.detect(reference, current, columns=columns, report_dir=report_dir)
    result.window = result.window or window
    outcome = DriftCheck(result)
    if result.drifted:
        outcome.drift_signal = _drift_signal(project, model, result, window, lineage)
        project.emit(outcome.drift_signal)
    if any(SEVERITIES.index(f.severity) >= 1 for f in result.quality):
        outcome.quality_signal = _quality_signal(model, result, window, lineage)
        project.emit(outcome.quality_signal)
    project.hook.after_drift_check(project=project, model=model, result=result)
    return outcome


def check_drift(
    project: Project,
    model: str,
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    *,
    detector: str | None = None,
    columns: list[str] | None = None,
    window: str = "",
    lineage: dict[str, Any] | None = None,
    report_dir: Path | None = None,
) -> tuple[DriftResult, Signal | None]:
    """:func:`run_check`, returning the result and the drift signal (None: no drift)."""
    outcome = run_check(
        project,
        model,
        reference,
        current,
        detector=detector,
        columns=columns,
        window=window,
        lineage=lineage,
        report_dir=report_dir,
    )
    return outcome.result, outcome.drift_signal


def _where(model: str, result: DriftResult, window: str) -> str:
    version = f" version {result.model_version}" if result.model_version else ""
    return f"model '{model}'{version}" + (f" in window {window}" if window else "")


def _drift_signal(
    project: Project, model: str, result: DriftResult, window: str, lineage: dict[str, Any] | None
) -> Signal:
    drifted = [f for f in result.features if f.drifted]
    share = result.share_drifted
    what = f"{len(drifted)} of {len(result.features)} features drifted ({share:.0%})"
    if drifted and len(drifted) <= 5:
        what += ": " + ", ".join(f.feature for f in drifted)
    if result.prediction is not None and result.prediction.drifted:
        what += "; the prediction drifted" if drifted else "the prediction drifted"
    return Signal(
        source=f"monitor.{result.detector}",
        type="drift",
        severity="critical" if share >= CRITICAL_SHARE else "warning",
        subject=model,
        summary=f"{what} for {_where(model, result, window)}",
        value=share,
        threshold=project.config.monitor.drift_share,
        data={
            "detector": result.detector,
            "window": window,
            "model_version": result.model_version,
            "rule": result.rule,
            "features": [vars(f) for f in result.features],
            "prediction": vars(result.prediction) if result.prediction else None,
            "profile_id": result.profile_id,
            "report_path": str(result.report_path) if result.report_path else None,
            "reference_rows": result.reference_rows,
            "current_rows": result.current_rows,
            "lineage": lineage or {},
        },
    )


def _quality_signal(
    model: str, result: DriftResult, window: str, lineage: dict[str, Any] | None
) -> Signal:
    serious = [f for f in result.quality if f.severity != "info"]
    worst = max((f.severity for f in serious), key=SEVERITIES.index)
    shown = "; ".join(f.detail for f in serious[:3])
    more = f" (and {len(serious) - 3} more)" if len(serious) > 3 else ""
    return Signal(
        source=f"monitor.{result.detector}",
        type="data_quality",
        severity=worst,
        subject=model,
        summary=f"{len(serious)} data-quality finding(s) for {_where(model, result, window)}: "
        f"{shown}{more}",
        value=float(len(serious)),
        data={
            "detector": result.detector,
            "window": window,
            "model_version": result.model_version,
            "findings": [vars(f) for f in result.quality],
            "profile_id": result.profile_id,
            "current_rows": result.current_rows,
            "lineage": lineage or {},
        },
    )

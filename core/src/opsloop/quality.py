"""Model quality from feedback labels: a window's metrics against the registered evaluation.

The serving stage joins labels sent to it to the logged predictions by request id, so a
window of the prediction log holds ``prediction`` and ``label`` (and, when computed, the
class ``probabilities``). With at least ``[monitor] min_labels`` labelled rows, the
metrics of :mod:`opsloop.evaluation` are computed on them and compared with the metrics the
registry holds for the version (or, if it holds none, its newest holdout evaluation).

A metric degraded when it is worse by more than ``quality_drop`` (accuracy, f1, roc_auc,
r2, ...: absolute) or ``quality_increase`` (log_loss, mae, rmse: relative) **and** a
bootstrap of the labelled rows (200 resamples) says the window is worse than the
registered figure at ``alpha``, so a handful of unlucky labels raises nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.evaluation import (
    CLASSIFICATION,
    LOWER_IS_BETTER,
    REGRESSION,
    classification_metrics,
    regression,
    regression_metrics,
)
from opsloop.records import Signal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from opsloop.project import Project
    from opsloop.records import ModelVersionRef

RESAMPLES = 200


@dataclass
class MetricChange:
    """One metric in the window against its registered figure (``change`` > 0: worse)."""

    metric: str
    value: float
    baseline: float
    change: float
    tolerance: float
    p_value: float | None = None  # bootstrap: share of resamples at least as good as baseline
    degraded: bool = False


@dataclass
class QualityResult:
    """A model-quality check of one window; ``skipped`` says why nothing was compared."""

    model: str
    version: str
    window: str = ""
    task: str = ""  # "classification" or "regression"
    rows: int = 0  # labelled rows compared
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_source: str = ""
    changes: list[MetricChange] = field(default_factory=list)
    skipped: str = ""

    @property
    def degraded(self) -> list[str]:
        return [c.metric for c in self.changes if c.degraded]


def baseline_metrics(project: Project, ref: ModelVersionRef) -> tuple[dict[str, float], str]:
    """The version's registered metrics, else its newest holdout evaluation; and whence."""
    known = {k: float(v) for k, v in (ref.metrics or {}).items() if _finite(v)}
    if known:
        return known, "registry"
    from opsloop.registry import latest_evidence

    evidence = latest_evidence(project, ref.name, ref.version, "evaluation")
    if evidence is not None:
        figures = evidence.data.get("metrics") or {}
        return {k: float(v) for k, v in figures.items() if _finite(v)}, f"evidence {evidence.id}"
    return {}, ""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _as_arrays(truth: pd.Series, predicted: pd.Series) -> tuple[np.ndarray, np.ndarray, bool]:
    """Labels and predictions as comparable arrays: floats when both are numbers, else text."""
    import numpy as np

    values = [*truth.tolist(), *predicted.tolist()]
    numeric = all(_finite(v) or isinstance(v, bool) for v in values)
    if numeric:
        return (
            np.asarray(truth.tolist(), dtype=float),
            np.asarray(predicted.tolist(), dtype=float),
            True,
        )
    return np.asarray([str(v) for v in truth]), np.asarray([str(v) for v in predicted]), False


def _probabilities(frame: pd.DataFrame, classes: np.ndarray) -> np.ndarray | None:
    """The logged class probabilities as a matrix, when every row has them for every class."""
    import numpy as np

    if "probabilities" not in frame.columns:
        return None
    rows = frame["probabilities"].tolist()
    if not rows or not all(isinstance(r, list) and len(r) == len(classes) for r in rows):
        return None
    try:
        return np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        return None


def _metrics(task: str, truth: Any, predicted: Any, proba: Any, classes: Any) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(truth, predicted)
    return classification_metrics(truth, predicted, proba, classes)


def check_quality(
    project: Project, ref: ModelVersionRef, frame: pd.DataFrame, *, window: str = ""
) -> tuple[QualityResult, Signal | None]:
    """Compare the labelled rows of ``frame`` with ``ref``'s registered metrics.

    A degradation is emitted as a ``model_quality`` Signal; ``after_quality_check`` runs
    whenever metrics were compared.
    """
    import numpy as np

    settings = project.config.monitor
    result = QualityResult(model=ref.name, version=ref.version, window=window)
    if "label" not in frame.columns or "prediction" not in frame.columns:
        result.skipped = "the window has no prediction and label columns"
        return result, None
    labelled = frame[frame["label"].notna() & frame["prediction"].notna()]
    result.rows = len(labelled)
    if result.rows < settings.min_labels:
        result.skipped = (
            f"{result.rows} labelled row(s) in the window, fewer than [monitor] min_labels "
            f"{settings.min_labels}"
        )
        return result, None
    baseline, source = baseline_metrics(project, ref)
    result.baseline, result.baseline_source = baseline, source
    if not baseline:
        result.skipped = f"{ref.name} version {ref.version} has no registered metrics to compare"
        return result, None
    truth, predicted, numeric = _as_arrays(labelled["label"], labelled["prediction"])
    if set(baseline) & set(CLASSIFICATION):
        task = "classification"
    elif set(baseline) & set(REGRESSION):
        task = "regression"
    else:
        task = "regression" if numeric and len(np.unique(truth)) > 20 else "classification"
    result.task = task
    classes = np.unique(np.concatenate([truth, predicted])) if task == "classification" else None
    proba = _probabilities(labelled, classes) if classes is not None else None
    result.metrics = _metrics(task, truth, predicted, proba, classes)
    rng = np.random.default_rng(0)
    for metric in sorted(set(baseline) & set(result.metrics)):
        value, before = result.metrics[metric], baseline[metric]
        if not (math.isfinite(value) and math.isfinite(before)):
            continue
        change = regression(metric, value, before)
        tolerance = (
            settings.quality_increase * abs(before)
            if metric in LOWER_IS_BETTER
            else settings.quality_drop
        )
        item = MetricChange(metric, value, before, change, tolerance)
        if change > tolerance:
            item.p_value = _bootstrap(rng, metric, before, task, truth, predicted, proba, classes)
            item.degraded = item.p_value <= settings.alpha
        result.changes.append(item)
    signal = _signal(result, settings.alpha) if result.degraded else None
    if signal is not None:
        project.emit(signal)
    project.hook.after_quality_check(project=project, model=ref.name, result=result)
    return result, signal


def _bootstrap(
    rng: np.random.Generator,
    metric: str,
    baseline: float,
    task: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray | None,
) -> float:
    """The share of resamples whose ``metric`` is at least as good as ``baseline``."""
    n = len(truth)
    at_least_as_good = 0
    for _ in range(RESAMPLES):
        pick = rng.integers(0, n, n)
        value = _metrics(
            task, truth[pick], predicted[pick], proba[pick] if proba is not None else None, classes
        ).get(metric, math.nan)
        if math.isnan(value) or regression(metric, value, baseline) <= 0:
            at_least_as_good += 1
    return (at_least_as_good + 1) / (RESAMPLES + 1)


def _signal(result: QualityResult, alpha: float) -> Signal:
    worst = [c for c in result.changes if c.degraded]
    shown = ", ".join(f"{c.metric} {c.value:.3f} vs {c.baseline:.3f} registered" for c in worst[:4])
    window = f" in window {result.window}" if result.window else ""
    return Signal(
        source="monitor.quality",
        type="model_quality",
        severity="warning",
        subject=result.model,
        summary=f"model '{result.model}' version {result.version} degraded{window}: {shown} "
        f"({result.rows} labelled rows)",
        value=max(c.change for c in worst),
        threshold=alpha,
        data=asdict(result),
    )

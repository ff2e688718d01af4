"""Evaluating a model version on a holdout table: the figures a promotion gate compares.

Metrics are computed here with numpy (imported when a metric is computed, never at import
time), so the core needs no scikit-learn: ROC AUC is the Mann-Whitney statistic over
average ranks, F1/precision/recall are for the positive class (the larger label) of a
binary problem and macro-averaged otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.errors import ConfigError, OpsloopError, one_line

#: A promotion gate: ``(ref, alias) -> CheckResult`` (None: the alias is not guarded).
Gate = Callable[["ModelVersionRef", str], Any]

if TYPE_CHECKING:
    import numpy as np

    from opsloop.config import GateSection
    from opsloop.interfaces import CheckResult, Dataset
    from opsloop.project import Project
    from opsloop.records import Evidence, ModelVersionRef

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION = ("mae", "rmse", "r2")
METRICS: tuple[str, ...] = CLASSIFICATION + REGRESSION
#: Metrics where a smaller value is better: their threshold is a maximum.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})


def check_metric_names(names: list[str], where: str) -> None:
    """A one-line ConfigError naming the first unknown metric and the known ones."""
    for name in names:
        if name not in METRICS:
            raise ConfigError(
                f"unknown metric '{name}' in {where}; known metrics: {', '.join(METRICS)}"
            )


def better_or_equal(metric: str, value: float, bound: float) -> bool:
    """Whether ``value`` meets ``bound`` for this metric's direction."""
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def regression(metric: str, candidate: float, incumbent: float) -> float:
    """How much worse ``candidate`` is than ``incumbent`` (negative: it is better)."""
    return candidate - incumbent if metric in LOWER_IS_BETTER else incumbent - candidate


# ---------------------------------------------------------------------------- metrics
def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties sharing their average rank."""
    import numpy as np

    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    starts = ends - counts
    return ((starts + 1 + ends) / 2.0)[inverse]  # type: ignore[no-any-return]


def binary_roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for boolean labels ``positive`` (NaN with a single class)."""
    import numpy as np

    n_pos = int(np.sum(positive))
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(np.asarray(scores, dtype=float))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _prf(truth: np.ndarray, predicted: np.ndarray, label: Any) -> tuple[float, float, float]:
    import numpy as np

    tp = float(np.sum((predicted == label) & (truth == label)))
    fp = float(np.sum((predicted == label) & (truth != label)))
    fn = float(np.sum((predicted != label) & (truth == label)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_metrics(
    truth: Any, predicted: Any, proba: Any = None, classes: Any = None
) -> dict[str, float]:
    """accuracy, precision, recall, f1 (and roc_auc, log_loss given class probabilities)."""
    import numpy as np

    y = np.asarray(truth)
    p = np.asarray(predicted)
    if classes is None:
        classes = np.unique(np.concatenate([y, p]))
    labels = list(np.asarray(classes))
    out: dict[str, float] = {"accuracy": float(np.mean(y == p)) if len(y) else math.nan}
    if len(labels) == 2:
        out["precision"], out["recall"], out["f1"] = _prf(y, p, labels[1])
    else:
        per_class = [_prf(y, p, label) for label in labels]
        for i, key in enumerate(("precision", "recall", "f1")):
            out[key] = float(np.mean([c[i] for c in per_class])) if per_class else math.nan
    if proba is not None:
        scores = np.asarray(proba, dtype=float)
        if scores.ndim == 1:
            scores = np.column_stack([1 - scores, scores])
        if len(labels) == 2:
            out["roc_auc"] = binary_roc_auc(y == labels[1], scores[:, 1])
        else:
            aucs = [binary_roc_auc(y == label, scores[:, i]) for i, label in enumerate(labels)]
            out["roc_auc"] = math.nan if any(map(math.isnan, aucs)) else float(np.mean(aucs))
        index = {label: i for i, label in enumerate(labels)}
        rows = [index.get(v, -1) for v in y.tolist()]
        if all(r >= 0 for r in rows):
            picked = np.clip(scores[np.arange(len(y)), rows], 1e-15, 1.0)
            out["log_loss"] = float(-np.mean(np.log(picked)))
    return out


def regression_metrics(truth: Any, predicted: Any) -> dict[str, float]:
    """mae, rmse and r2 of numeric predictions."""
    import numpy as np

    y = np.asarray(truth, dtype=float)
    p = np.asarray(predicted, dtype=float)
    err = p - y
    total = float(np.sum((y - y.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": 1.0 - float(np.sum(err**2)) / total if total else math.nan,
    }


def model_metrics(model: Any, frame: Any, target: str) -> dict[str, float]:
    """Every metric that applies to ``model`` scored on ``frame`` against column ``target``."""
    import numpy as np

    if target not in frame.columns:
        raise OpsloopError(
            f"target column '{target}' is not in the holdout; columns: "
            + ", ".join(str(c) for c in list(frame.columns)[:12])
        )
    truth = frame[target].to_numpy()
    features = frame.drop(columns=[target])
    try:
        predicted = np.asarray(model.predict(features))
    except OpsloopError:
        raise
    except Exception as exc:  # noqa: BLE001 - any scoring failure becomes one line
        raise OpsloopError(f"the model could not score the holdout: {one_line(exc)}") from None
    classifier = hasattr(model, "predict_proba") or truth.dtype.kind in "biuOUSb"
    if not classifier and truth.dtype.kind == "f":
        classifier = bool(np.all(np.mod(truth, 1) == 0)) and len(np.unique(truth)) <= 50
    if not classifier:
        return regression_metrics(truth, predicted)
    proba = model.predict_proba(features) if hasattr(model, "predict_proba") else None
    classes = getattr(model, "classes_", None)
    return classification_metrics(truth, predicted, proba, classes)


# ---------------------------------------------------------------------------- holdout
@dataclass
class Evaluation:
    """One version's figures on the holdout."""

    ref: ModelVersionRef
    holdout: str
    rows: int
    metrics: dict[str, float]
    content_hash: str = ""
    load_ids: list[str] = field(default_factory=list)


def read_holdout(project: Project, holdout: str) -> Dataset:
    """The holdout table ``dataset.table`` through the read_dataset hook."""
    dataset, _, table = holdout.partition(".")
    data = project.hook.read_dataset(project=project, table=table, dataset=dataset)
    if data is None:
        raise OpsloopError(
            f"no plugin reads dataset tables, so holdout '{holdout}' cannot be read; "
            "install one, e.g. `pip install opsloop-dlt`"
        )
    return data  # type: ignore[no-any-return]


class HoldoutEvaluator:
    """Loads versions (hash-checked) and scores them on one holdout, each version once."""

    def __init__(self, project: Project, gate: GateSection) -> None:
        self.project = project
        self.gate = gate
        self._data: Dataset | None = None
        self._done: dict[tuple[str, str], Evaluation] = {}

    @property
    def data(self) -> Dataset:
        if self._data is None:
            self._data = read_holdout(self.project, self.gate.holdout)
        return self._data

    def evaluate(self, ref: ModelVersionRef, *, record: bool = True) -> Evaluation:
        """The version's metrics on the holdout; recorded as evaluation evidence."""
        key = (ref.name, ref.version)
        if key in self._done:
            return self._done[key]
        from opsloop.registry import get_store

        data = self.data
        model = get_store(self.project).load(ref)
        metrics = model_metrics(model, data.frame, self.gate.target)
        result = Evaluation(
            ref=ref,
            holdout=self.gate.holdout,
            rows=len(data.frame),
            metrics=metrics,
            content_hash=data.content_hash,
            load_ids=list(data.load_ids),
        )
        self._done[key] = result
        if record:
            record_evaluation(self.project, result, self.gate)
        return result


def threshold_failures(metrics: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """The thresholds ``metrics`` miss, as ``"roc_auc 0.81 < minimum 0.9"``."""
    out = []
    for metric, bound in sorted(thresholds.items()):
        value = metrics.get(metric, math.nan)
        if math.isnan(value) or not better_or_equal(metric, value, bound):
            op, word = (">", "maximum") if metric in LOWER_IS_BETTER else ("<", "minimum")
            shown = "n/a" if math.isnan(value) else f"{value:.4f}"
            out.append(f"{metric} {shown} {op} {word} {bound:g}")
    return out


def _verdict(passed: bool | None) -> str:
    """A verdict word (audit entries mask any key that looks like 'pass...')."""
    return {True: "passed", False: "failed", None: "none"}[passed]


def record_evaluation(project: Project, result: Evaluation, gate: GateSection) -> Evidence:
    """Store an evaluation as Evidence (passed: every threshold met) and audit it."""
    from opsloop.records import Evidence

    missed = threshold_failures(result.metrics, gate.thresholds)
    figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
    evidence = Evidence(
        model=result.ref.name,
        version=result.ref.version,
        type="evaluation",
        passed=not missed,
        summary=f"{result.holdout} ({result.rows} rows): {figures}"
        + (f"; missed: {'; '.join(missed)}" if missed else ""),
        data={
            "holdout": result.holdout,
            "rows": result.rows,
            "target": gate.target,
            "metrics": {k: (None if math.isnan(v) else v) for k, v in result.metrics.items()},
            "thresholds": dict(gate.thresholds),
            "missed": missed,
            "holdout_content_hash": result.content_hash,
            "holdout_load_ids": result.load_ids,
        },
        actor=project.audit.actor,
    )
    project.emit(
        evidence,
        "model.evidence",
        f"{result.ref.name}/{result.ref.version}",
        after={"type": "evaluation", "verdict": _verdict(evidence.passed), "id": evidence.id},
        detail={"holdout": result.holdout, "metrics": evidence.data["metrics"]},
    )
    return evidence


# ---------------------------------------------------------------------------- gates
def _where(result: Evaluation) -> str:
    return f"on {result.holdout} ({result.rows} rows)"


@dataclass
class ThresholdGate:
    """Promotion gate: the candidate's ``metric`` on the holdout meets ``bound``."""

    evaluator: HoldoutEvaluator
    metric: str
    bound: float

    @property
    def name(self) -> str:
        return f"threshold {self.metric}"

    def __call__(self, ref: ModelVersionRef, alias: str) -> CheckResult | None:
        from opsloop.interfaces import CheckResult

        if alias not in self.evaluator.gate.aliases:
            return None  # not an alias this gate guards
        result = self.evaluator.evaluate(ref)
        metric, bound = self.metric, self.bound
        value = result.metrics.get(metric, math.nan)
        name = self.name
        if math.isnan(value):
            return CheckResult(
                name, False, f"{metric} cannot be computed for this model {_where(result)}"
            )
        ok = better_or_equal(metric, value, bound)
        lower = metric in LOWER_IS_BETTER
        op = ("<=" if ok else ">") if lower else (">=" if ok else "<")
        word = "maximum" if lower else "minimum"
        return CheckResult(name, ok, f"{metric} {value:.4f} {op} {word} {bound:g} {_where(result)}")


@dataclass
class RegressionGate:
    """Promotion gate: the candidate is not worse than the alias's current holder by more
    than ``margin`` on the same holdout."""

    evaluator: HoldoutEvaluator
    metric: str
    margin: float

    @property
    def name(self) -> str:
        return f"regression {self.metric}"

    def __call__(self, ref: ModelVersionRef, alias: str) -> CheckResult | None:
        from opsloop.interfaces import CheckResult
        from opsloop.registry import current_version, get_store

        if alias not in self.evaluator.gate.aliases:
            return None
        project = self.evaluator.project
        metric, name = self.metric, self.name
        incumbent = current_version(project, ref.name, alias)
        if incumbent is None or incumbent == ref.version:
            return CheckResult(name, True, f"no current @{alias} to compare with")
        mine = self.evaluator.evaluate(ref)
        theirs = self.evaluator.evaluate(get_store(project).resolve(ref.name, incumbent))
        value = mine.metrics.get(metric, math.nan)
        before = theirs.metrics.get(metric, math.nan)
        if math.isnan(value) or math.isnan(before):
            return CheckResult(
                name, False, f"{metric} cannot be computed for both versions {_where(mine)}"
            )
        worse = regression(metric, value, before)
        return CheckResult(
            name,
            worse <= self.margin + 1e-12,
            f"{metric} {value:.4f} vs @{alias} v{incumbent} {before:.4f}: "
            f"{'worse' if worse > 0 else 'not worse'} by {abs(worse):.4f}, "
            f"allowed {self.margin:g} {_where(mine)}",
        )


@dataclass
class EvaluationGate:
    """A gate with no threshold: the candidate must score on the holdout (recorded)."""

    evaluator: HoldoutEvaluator
    name = "holdout evaluation"

    def __call__(self, ref: ModelVersionRef, alias: str) -> CheckResult | None:
        from opsloop.interfaces import CheckResult

        if alias not in self.evaluator.gate.aliases:
            return None
        result = self.evaluator.evaluate(ref)
        figures = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
        return CheckResult(self.name, True, f"{figures} {_where(result)}")


def make_gates(project: Project, gate: GateSection) -> list[Gate]:
    """The promotion gates ``[registry.gate]`` describes: one per threshold and per margin.

    Each gate returns a CheckResult naming the check and showing the figures, or None for
    an alias the gate does not guard. Each version is evaluated once per promotion and the
    evaluation is recorded as evidence. An unknown metric name is a ConfigError.
    """
    check_metric_names(list(gate.thresholds), "[registry.gate] thresholds")
    check_metric_names(list(gate.max_regression), "[registry.gate] max_regression")
    evaluator = HoldoutEvaluator(project, gate)
    gates: list[Gate] = [ThresholdGate(evaluator, m, b) for m, b in sorted(gate.thresholds.items())]
    gates += [RegressionGate(evaluator, m, b) for m, b in sorted(gate.max_regression.items())]
    return gates or [EvaluationGate(evaluator)]


def evaluate_version(project: Project, ref: ModelVersionRef) -> tuple[Evaluation, list[str]]:
    """Score ``ref`` on the configured holdout, record it; (figures, thresholds missed)."""
    gate = project.config.registry.gate
    if gate is None:
        raise OpsloopError(
            'no holdout is configured; add [registry.gate] with holdout = "dataset.table" '
            "and target to opsloop.toml"
        )
    check_metric_names(list(gate.thresholds), "[registry.gate] thresholds")
    result = HoldoutEvaluator(project, gate).evaluate(ref)
    return result, threshold_failures(result.metrics, gate.thresholds)

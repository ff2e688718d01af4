"""The numeric fast path: score a float64 row array without pandas or per-call validation.

scikit-learn spends most of a one-row ``predict`` checking its input (about 0.2 ms here for
a scaled logistic regression); the server has already checked every value against the
signature. For a model whose inputs are all ``double`` this module builds, once per loaded
version, a scorer that takes a 2-D float64 array in the model's own column order:

* ``compiled``: a linear scikit-learn pipeline (scalers, then a linear model) as numpy
  arithmetic with the fitted coefficients;
* ``sklearn``: the estimator itself, called on arrays (a copy without ``feature_names_in_``,
  so it does not warn), with a pipeline's transforms run once for predict and predict_proba.

Either is used only after it gave the same answers as the model's own ``predict`` (and
``predict_proba``) on probe rows: labels equal, numbers within 1e-9. Anything else keeps
the general path (a DataFrame through the model's ``predict``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger("opsloop_fastapi.fastmodel")

PROBE_ROWS = 64
RTOL = 1e-9
ATOL = 1e-12


@dataclass(frozen=True)
class FastModel:
    """A verified array scorer: ``columns`` in the order the arrays must have."""

    kind: str  # "compiled" or "sklearn"
    columns: tuple[str, ...]
    predict: Callable[[np.ndarray], np.ndarray]
    both: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def unwrap(model: Any) -> Any:
    """The estimator inside a registry wrapper (``unwrap()``), else the model itself."""
    inner = getattr(model, "unwrap", None)
    if callable(inner):
        try:
            return inner()
        except Exception:  # noqa: BLE001 - a wrapper that cannot unwrap has no fast path
            return None
    return model


def column_order(model: Any, estimator: Any, names: Sequence[str]) -> tuple[str, ...] | None:
    """The column order the estimator was fitted with, when it is a permutation of ``names``."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        order = tuple(str(c) for c in fitted)
    elif getattr(model, "features", None):
        order = tuple(str(c) for c in model.features)
    else:
        order = tuple(names)
    return order if sorted(order) == sorted(names) and len(set(order)) == len(order) else None


def build(
    model: Any, names: Sequence[str], has_proba: bool, *, compile_models: bool = True
) -> FastModel | None:
    """A verified fast scorer for ``model`` whose inputs are the double columns ``names``."""
    try:
        import pandas as pd
        from sklearn.base import BaseEstimator
    except ImportError:
        return None
    estimator = unwrap(model)
    if not isinstance(estimator, BaseEstimator):
        return None
    order = column_order(model, estimator, names)
    if order is None:
        return None
    probes = _probes(estimator, len(order))
    frame = pd.DataFrame(probes, columns=list(order))[list(names)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = np.asarray(model.predict(frame))
            want_proba = np.asarray(model.predict_proba(frame)) if has_proba else None
    except Exception as exc:  # noqa: BLE001 - a model that cannot score probes keeps the slow path
        logger.info("no fast path: the model could not score probe rows (%s)", exc)
        return None
    candidates: list[tuple[str, Any]] = []
    if compile_models:
        candidates.append(("compiled", _compile))
    candidates.append(("sklearn", _array_estimator))
    for kind, make in candidates:
        scorer = make(estimator, has_proba)
        if scorer is None:
            continue
        predict, both = scorer
        if _agrees(predict, both, probes, want, want_proba):
            return FastModel(kind=kind, columns=order, predict=predict, both=both)
        logger.info("fast path '%s' disagreed with the model on probe rows; not used", kind)
    return None


# ---------------------------------------------------------------------- verification
def _probes(estimator: Any, width: int) -> np.ndarray:
    """Rows spread around the training data when a scaler tells where it lies."""
    rng = np.random.default_rng(20261127)
    noise = rng.standard_normal((PROBE_ROWS, width))
    first = estimator.steps[0][1] if hasattr(estimator, "steps") and estimator.steps else None
    center = getattr(first, "mean_", None)
    spread = getattr(first, "scale_", None)
    if center is None and hasattr(first, "data_min_"):
        center = (first.data_min_ + first.data_max_) / 2
        spread = first.data_range_ / 2
    if isinstance(center, np.ndarray) and center.shape == (width,):
        scale = spread if isinstance(spread, np.ndarray) and spread.shape == (width,) else 1.0
        return np.ascontiguousarray(center + noise * scale, dtype=np.float64)
    return noise


def _agrees(
    predict: Callable[[np.ndarray], np.ndarray],
    both: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    probes: np.ndarray,
    want: np.ndarray,
    want_proba: np.ndarray | None,
) -> bool:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = np.asarray(predict(probes))
            got_labels, got_proba = both(probes)
            one = np.asarray(predict(probes[:1]))
        if caught:
            return False
        if not (_same(got, want) and _same(np.asarray(got_labels), want) and _same(one, want[:1])):
            return False
        if want_proba is None:
            return got_proba is None
        return got_proba is not None and _same(np.asarray(got_proba), want_proba)
    except Exception:  # noqa: BLE001 - a candidate that fails is simply not used
        return False


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    if got.shape != want.shape or got.dtype.kind != want.dtype.kind:
        return False
    if want.dtype.kind == "f":
        return bool(np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True))
    return bool(np.array_equal(got, want))


# ---------------------------------------------------------------------- sklearn on arrays
def _strip_names(estimator: Any) -> None:
    if hasattr(estimator, "feature_names_in_"):
        with contextlib.suppress(AttributeError):
            del estimator.feature_names_in_


def _array_estimator(estimator: Any, has_proba: bool) -> tuple[Any, Any] | None:
    """The estimator on arrays; a pipeline's transforms run once for both outputs."""
    try:
        clone = copy.deepcopy(estimator)
    except Exception:  # noqa: BLE001 - an estimator that cannot be copied keeps the slow path
        return None
    steps = getattr(clone, "steps", None)
    if steps is None:
        _strip_names(clone)
        proba = clone.predict_proba if has_proba else None
        return clone.predict, lambda x: (clone.predict(x), proba(x) if proba else None)
    transforms = [s for _, s in steps[:-1] if s is not None and s != "passthrough"]
    final = steps[-1][1]
    if final is None or final == "passthrough":
        return None
    for step in (*transforms, final):
        _strip_names(step)
    _strip_names(clone)

    def transform(x: np.ndarray) -> Any:
        for step in transforms:
            x = step.transform(x)
        return x

    def predict(x: np.ndarray) -> np.ndarray:
        return final.predict(transform(x))  # type: ignore[no-any-return]

    def both(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        xt = transform(x)
        return final.predict(xt), final.predict_proba(xt) if has_proba else None

    return predict, both


# ---------------------------------------------------------------------- compiled linear
def _affine(step: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A scaler as numpy arithmetic, in scikit-learn's own order of operations."""
    name = type(step).__name__
    if name == "StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(x: np.ndarray) -> np.ndarray:
            if mean is not None:
                x = x - mean
            if scale is not None:
                x = x / scale
            return x

        return standard
    if name == "MinMaxScaler" and not step.clip:
        mul, add = step.scale_, step.min_
        return lambda x: x * mul + add
    if name == "MaxAbsScaler":
        div = step.scale_
        return lambda x: x / div
    return None


_LINEAR_CLASSIFIERS = {"LogisticRegression"}
_LINEAR_REGRESSORS = {"LinearRegression", "Ridge", "Lasso", "ElasticNet"}


def _compile(estimator: Any, has_proba: bool) -> tuple[Any, Any] | None:
    """A pipeline of scalers ending in a linear model, as numpy arithmetic."""
    steps = [s for _, s in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    steps = [s for s in steps if s is not None and s != "passthrough"]
    if not steps:
        return None
    transforms = [_affine(s) for s in steps[:-1]]
    if any(t is None for t in transforms):
        return None
    final = steps[-1]
    name = type(final).__name__
    coef = getattr(final, "coef_", None)
    intercept = getattr(final, "intercept_", 0.0)
    if not isinstance(coef, np.ndarray) or coef.dtype != np.float64:
        return None
    coef_t = coef.T if coef.ndim == 2 else coef

    def decision(x: np.ndarray) -> np.ndarray:
        for t in transforms:
            x = t(x)  # type: ignore[misc]
        scores = x @ coef_t + intercept
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    if name in _LINEAR_REGRESSORS:
        return decision, lambda x: (decision(x), None)
    if name not in _LINEAR_CLASSIFIERS:
        return None
    from scipy.special import expit, softmax

    classes = final.classes_

    def labels(scores: np.ndarray) -> np.ndarray:
        index = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return classes.take(index, axis=0)  # type: ignore[no-any-return]

    def proba(scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:
            p = expit(scores)
            return np.stack([1 - p, p], axis=1)
        return softmax(scores, axis=1)  # type: ignore[no-any-return]

    def predict(x: np.ndarray) -> np.ndarray:
        return labels(decision(x))

    def both(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        scores = decision(x)
        return labels(scores), proba(scores) if has_proba else None

    return predict, both

"""The default trainer: a scaled logistic regression on every numeric column of a dataset.

A baseline that is quick, deterministic and honest about its held-out quality, so the
rest of the loop (registry, serving, monitoring) has a real model to work with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.interfaces import Dataset, TrainedModel

if TYPE_CHECKING:
    import pandas as pd

DEFAULTS: dict[str, Any] = {"C": 1.0, "max_iter": 1000, "test_size": 0.2, "random_state": 42}
ESTIMATOR = "Pipeline(StandardScaler, LogisticRegression)"


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "") or "none"


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against :data:`DEFAULTS`; one-line errors naming the key."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise OpsloopError(
            f"unknown training parameter(s) {', '.join(unknown)}; allowed: {', '.join(DEFAULTS)}"
        )
    out = {**DEFAULTS, **params}
    try:
        out["C"] = float(out["C"])
        out["max_iter"] = int(out["max_iter"])
        out["test_size"] = float(out["test_size"])
        out["random_state"] = int(out["random_state"])
    except (TypeError, ValueError) as exc:
        raise OpsloopError(f"training parameters must be numbers: {exc}") from None
    if out["C"] <= 0:
        raise OpsloopError(f"training parameter C must be > 0, got {out['C']}")
    if out["max_iter"] < 1:
        raise OpsloopError(f"training parameter max_iter must be >= 1, got {out['max_iter']}")
    if not 0 < out["test_size"] < 1:
        raise OpsloopError(
            f"training parameter test_size must be between 0 and 1, got {out['test_size']}"
        )
    return out


def _features(frame: pd.DataFrame, target: str, dataset: str) -> list[str]:
    columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise OpsloopError(
            f"target column '{target}' is not in dataset '{dataset}'; columns: {_listing(columns)}"
        )
    numeric = [str(c) for c in frame.select_dtypes(include="number").columns if c != target]
    if not numeric:
        others = [c for c in columns if c != target]
        raise OpsloopError(
            f"dataset '{dataset}' has no numeric feature column besides target '{target}' "
            f"(columns: {_listing(others)}); convert features to numbers first"
        )
    return numeric


def train(data: Dataset, target: str, params: Mapping[str, Any] | None = None) -> TrainedModel:
    """Fit the default pipeline on ``data``, scored on a stratified held-out split."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    options = _check_params(params or {})
    frame = data.frame
    features = _features(frame, target, data.name)
    y = frame[target]
    if int(y.isna().sum()):
        raise OpsloopError(
            f"target column '{target}' has {int(y.isna().sum())} missing value(s); "
            "drop or fill them before training"
        )
    x = frame[features]
    with_nan = [c for c in features if x[c].isna().any()]
    if with_nan:
        raise OpsloopError(
            f"feature column(s) {_listing(with_nan)} have missing values; "
            "drop or fill them before training"
        )
    if y.dtype.kind == "f" and not np.all(np.mod(y.to_numpy(), 1) == 0):
        raise OpsloopError(
            f"target column '{target}' holds continuous values; this trainer is a classifier "
            "(use integer or string class labels)"
        )
    counts = y.value_counts()
    if len(counts) < 2:
        raise OpsloopError(f"target column '{target}' has a single class; need at least two")
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x,
            y,
            test_size=options["test_size"],
            random_state=options["random_state"],
            stratify=y,
        )
    except ValueError as exc:
        raise OpsloopError(
            f"cannot split dataset '{data.name}' ({len(frame)} rows, smallest class "
            f"{int(counts.min())} rows) into train and test: {exc}"
        ) from None
    model = Pipeline(
        [
            ("scaler", StandardScaler()),
            (
                "classifier",
                LogisticRegression(
                    C=options["C"],
                    max_iter=options["max_iter"],
                    random_state=options["random_state"],
                ),
            ),
        ]
    )
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    proba = model.predict_proba(x_test)
    classes = list(model.classes_)
    if len(classes) == 2:
        roc_auc = roc_auc_score(y_test, proba[:, 1])
        f1 = f1_score(y_test, predicted, pos_label=classes[1])
    else:
        roc_auc = roc_auc_score(y_test, proba, multi_class="ovr", labels=classes)
        f1 = f1_score(y_test, predicted, average="macro")
    return TrainedModel(
        model=model,
        flavor="sklearn",
        features=features,
        target=target,
        params={
            "estimator": ESTIMATOR,
            **options,
            "train_rows": len(x_train),
            "test_rows": len(x_test),
        },
        metrics={
            "accuracy": float(accuracy_score(y_test, predicted)),
            "roc_auc": float(roc_auc),
            "f1": float(f1),
        },
        input_example=x.head(5).reset_index(drop=True),
    )

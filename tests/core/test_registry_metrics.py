"""The core's numpy metrics agree with scikit-learn's (the core itself never imports it)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from opsloop import evaluation
from opsloop.errors import ConfigError, OpsloopError


def test_binary_metrics_match_sklearn() -> None:
    rng = np.random.RandomState(3)
    truth = rng.randint(0, 2, 300)
    # Rounded scores: many ties, which ROC AUC must average.
    scores = np.round(np.clip(truth * 0.3 + rng.rand(300) * 0.7, 0, 1), 1)
    predicted = (scores >= 0.5).astype(int)
    proba = np.column_stack([1 - scores, scores])
    got = evaluation.classification_metrics(truth, predicted, proba, classes=[0, 1])
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert got["precision"] == pytest.approx(sk.precision_score(truth, predicted))
    assert got["recall"] == pytest.approx(sk.recall_score(truth, predicted))
    assert got["f1"] == pytest.approx(sk.f1_score(truth, predicted))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(truth, scores))
    assert got["log_loss"] == pytest.approx(sk.log_loss(truth, proba))


def test_string_labels_and_multiclass_match_sklearn() -> None:
    rng = np.random.RandomState(5)
    labels = np.array(["ant", "bee", "cat"])
    truth = labels[rng.randint(0, 3, 240)]
    raw = rng.rand(240, 3) + (truth[:, None] == labels[None, :]) * 0.8
    proba = raw / raw.sum(axis=1, keepdims=True)
    predicted = labels[proba.argmax(axis=1)]
    got = evaluation.classification_metrics(truth, predicted, proba, classes=labels)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert got["f1"] == pytest.approx(sk.f1_score(truth, predicted, average="macro"))
    assert got["precision"] == pytest.approx(sk.precision_score(truth, predicted, average="macro"))
    expected_auc = sk.roc_auc_score(truth, proba, multi_class="ovr", labels=list(labels))
    assert got["roc_auc"] == pytest.approx(expected_auc)
    assert got["log_loss"] == pytest.approx(sk.log_loss(truth, proba, labels=list(labels)))


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.RandomState(1)
    truth = rng.normal(size=200) * 3
    predicted = truth + rng.normal(size=200)
    got = evaluation.regression_metrics(truth, predicted)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(truth, predicted))
    assert got["rmse"] == pytest.approx(math.sqrt(sk.mean_squared_error(truth, predicted)))
    assert got["r2"] == pytest.approx(sk.r2_score(truth, predicted))


def test_single_class_holdout_has_no_auc() -> None:
    got = evaluation.classification_metrics([1, 1, 1], [1, 0, 1], [0.9, 0.2, 0.8], [0, 1])
    assert math.isnan(got["roc_auc"])
    missed = evaluation.threshold_failures(got, {"roc_auc": 0.9})
    assert missed == ["roc_auc n/a < minimum 0.9"]


def test_model_metrics_picks_classifier_or_regressor() -> None:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    frame = pd.DataFrame({"x": np.arange(40.0), "y": [0] * 20 + [1] * 20})
    clf = LogisticRegression().fit(frame[["x"]], frame["y"])
    assert set(evaluation.model_metrics(clf, frame, "y")) == {
        "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
    }  # fmt: skip
    reg_frame = pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40.0) * 1.5 + 0.25})
    reg = LinearRegression().fit(reg_frame[["x"]], reg_frame["y"])
    got = evaluation.model_metrics(reg, reg_frame, "y")
    assert set(got) == {"mae", "rmse", "r2"} and got["r2"] == pytest.approx(1.0)
    with pytest.raises(OpsloopError, match="target column 'label' is not in the holdout"):
        evaluation.model_metrics(clf, frame, "label")


def test_directions_and_unknown_metric_names() -> None:
    assert evaluation.better_or_equal("roc_auc", 0.91, 0.9)
    assert not evaluation.better_or_equal("rmse", 2.0, 1.5)
    assert evaluation.regression("rmse", 2.0, 1.5) == pytest.approx(0.5)
    assert evaluation.regression("accuracy", 0.8, 0.9) == pytest.approx(0.1)
    assert evaluation.threshold_failures({"rmse": 2.0}, {"rmse": 1.5}) == [
        "rmse 2.0000 > maximum 1.5"
    ]
    with pytest.raises(ConfigError) as info:
        evaluation.check_metric_names(["roc_acu"], "[registry.gate] thresholds")
    message = str(info.value)
    assert "unknown metric 'roc_acu' in [registry.gate] thresholds" in message
    assert "known metrics: accuracy, precision, recall, f1, roc_auc" in message


def test_core_registry_modules_import_no_vendor_sdk() -> None:
    probe = (
        "import sys, opsloop.registry, opsloop.evaluation, opsloop.modelcard, "
        "opsloop.readiness, opsloop.builtins.registry_plugin, opsloop.cli.commands_model; "
        "print(sorted(m for m in ('mlflow', 'sklearn', 'numpy', 'pandas', 'skops') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"

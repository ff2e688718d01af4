"""The array fast path: verified against the model, exactly as strict as the pydantic path."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import MODEL, app_for, breast_cancer, features, signature, store_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opsloop_fastapi import fastmodel
from opsloop_fastapi.schema import FastReader, InputError, InputSchema
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

PREDICT = f"/v1/models/{MODEL}/predict"


def fitted(estimator: Any) -> Any:
    data = breast_cancer()
    return estimator.fit(data[features()], data["target"])


@pytest.mark.parametrize(
    ("estimator", "kind"),
    [
        (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), "compiled"),
        (
            make_pipeline(MinMaxScaler(), MaxAbsScaler(), LogisticRegression(max_iter=2000)),
            "compiled",
        ),
        (make_pipeline(StandardScaler(), Ridge()), "compiled"),
        (RandomForestClassifier(n_estimators=5, random_state=0), "sklearn"),
    ],
)
def test_fast_path_answers_exactly_as_the_model(
    project_factory: Any, estimator: Any, kind: str
) -> None:
    model = fitted(estimator)
    project = project_factory()
    store_of(project).add(MODEL, model, signature(), aliases=("candidate",))
    app = app_for(project, alias="candidate", poll_seconds=0)
    frame = breast_cancer()[features()]
    with TestClient(app) as client:
        assert client.get("/version").json()["fast_path"] == kind
        for start in range(0, 569, 100):
            rows = frame.iloc[start : start + 100]
            got = client.post(PREDICT, json={"records": rows.to_dict("records")}).json()
            same(got["predictions"], model.predict(rows))
            if hasattr(model, "predict_proba"):
                np.testing.assert_allclose(
                    got["probabilities"], model.predict_proba(rows), rtol=1e-9, atol=1e-12
                )
        for i in (0, 57, 568):  # one row per request, the benchmark's shape
            row = frame.iloc[[i]]
            got = client.post("/invocations", json={"dataframe_records": row.to_dict("records")})
            same(got.json()["predictions"], model.predict(row))


def same(got: list[Any], want: Any) -> None:
    """Labels exactly; numbers (regression) within the fast path's 1e-9 tolerance."""
    if np.asarray(want).dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    else:
        assert got == want.tolist()


def test_compile_can_be_turned_off(project_factory: Any) -> None:
    project = project_factory()
    app = app_for(project, compile_models=False)
    assert TestClient(app).get("/version").json()["fast_path"] == "sklearn"


class Reordering:
    """A registry wrapper like opsloop-mlflow's: picks the fitted columns by name."""

    def __init__(self, model: Any, features: list[str]) -> None:
        self.model = model
        self.features = features

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.model.predict(frame[self.features])

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self.model.predict_proba(frame[self.features])

    def unwrap(self) -> Any:
        return self.model


def test_signature_order_differs_from_the_fitted_order(project_factory: Any) -> None:
    data = breast_cancer()
    shuffled = list(reversed(features()))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(data[shuffled], data["target"])
    project = project_factory()
    wrapped = Reordering(model, shuffled)
    store_of(project).add(MODEL, wrapped, signature(), aliases=("candidate",))  # signature order
    with TestClient(app_for(project, alias="candidate")) as client:
        assert client.get("/version").json()["fast_path"] == "compiled"
        rows = data[features()].iloc[:50]
        got = client.post(PREDICT, json={"records": rows.to_dict("records")}).json()
        assert got["predictions"] == model.predict(rows[shuffled]).tolist()
        split = {"columns": features(), "data": rows.to_numpy().tolist()}
        assert client.post(PREDICT, json=split).json()["predictions"] == got["predictions"]


class Inconsistent(ClassifierMixin, BaseEstimator):
    """Answers differently for arrays than for frames: no fast path may be used."""

    def fit(self, x: Any, y: Any) -> Inconsistent:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, x: Any) -> Any:
        return np.ones(len(x), dtype=int) if isinstance(x, pd.DataFrame) else np.zeros(len(x), int)


def test_a_model_that_disagrees_with_itself_keeps_the_general_path(project_factory: Any) -> None:
    model = fitted(Inconsistent())
    assert fastmodel.build(model, features(), has_proba=False) is None
    by_name = ColumnTransformer([("scale", StandardScaler(), features()[:5])])
    selecting = fitted(make_pipeline(by_name, LogisticRegression()))
    assert fastmodel.build(selecting, features(), has_proba=True) is None  # selects by name
    project = project_factory()
    store_of(project).add(MODEL, model, signature(), aliases=("odd",))
    with TestClient(app_for(project, alias="odd")) as client:
        assert client.get("/version").json()["fast_path"] is None
        got = client.post(
            PREDICT, json={"records": [breast_cancer()[features()].iloc[0].to_dict()]}
        )
        assert got.json()["predictions"] == [1]  # what the model says for a frame


# ---------------------------------------------------------------------- strictness
NAMES = ["a", "b", "c"]
SCHEMA = InputSchema.from_signature("m", {"inputs": [{"name": n, "type": "double"} for n in NAMES]})
READER = FastReader(NAMES, ["c", "a", "b"])

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
records = st.lists(
    st.dictionaries(st.sampled_from([*NAMES, "d"]), values, min_size=0, max_size=4),
    min_size=0,
    max_size=3,
)


def pydantic_frame(rows: Any) -> pd.DataFrame | None:
    try:
        return SCHEMA.frame_from_records(rows, ("records",))
    except InputError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_fast_reader_accepts_only_what_pydantic_accepts(rows: Any) -> None:
    array = READER.records(rows)
    frame = pydantic_frame(rows)
    if array is not None:
        assert frame is not None, rows
        np.testing.assert_array_equal(array, frame[["c", "a", "b"]].to_numpy(dtype=np.float64))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(values, min_size=3, max_size=3), min_size=1, max_size=3))
def test_fast_split_accepts_only_what_pydantic_accepts(data: Any) -> None:
    array = READER.split(list(NAMES), data)
    try:
        frame = SCHEMA.frame_from_split(list(NAMES), data, ())
    except InputError:
        frame = None
    if array is not None:
        assert frame is not None, data
        np.testing.assert_array_equal(array, frame[["c", "a", "b"]].to_numpy(dtype=np.float64))


def test_typical_values_take_the_fast_path() -> None:
    rows = [{"a": 1, "b": 2.5, "c": -3e10}, {"c": 0, "b": 0.0, "a": 1e-300}]
    assert READER.records(rows).tolist() == [[-3e10, 1.0, 2.5], [0.0, 1e-300, 0.0]]
    assert READER.split(["b", "a", "c"], [[1, 2, 3]]).tolist() == [[3.0, 2.0, 1.0]]
    for bad in ([{"a": True, "b": 1, "c": 1}], [{"a": "1", "b": 1, "c": 1}],
                [{"a": math.inf, "b": 1, "c": 1}], [{"a": 1, "b": 1}],
                [{"a": 1, "b": 1, "c": 1, "d": 1}], []):  # fmt: skip
        assert READER.records(bad) is None

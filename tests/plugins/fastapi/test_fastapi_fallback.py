"""A failing or too slow challenger never fails a request: the champion answers instead."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import MODEL, SlowModel, app_for, one_row, signature, store_of, trained_model

PREDICT = f"/v1/models/{MODEL}/predict"


class Broken:
    """A challenger whose predict raises, as a model with a serving bug would."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.calls = 0

    def predict(self, frame: Any) -> Any:
        self.calls += 1
        raise self.error("boom: the challenger cannot score")


@pytest.mark.parametrize("error", [RuntimeError, ValueError])
def test_a_raising_challenger_is_answered_by_the_champion(
    project_factory: Any, error: type[Exception]
) -> None:
    project = project_factory()
    broken = Broken(error)
    store_of(project).add(MODEL, broken, signature(), aliases=("challenger",))
    app = app_for(project, canary_share=0.5, poll_seconds=0, compile_models=False)
    with TestClient(app) as client:
        answers = [
            client.post(PREDICT, json={"records": [one_row(i)]}, headers={"x-request-id": f"r{i}"})
            for i in range(40)
        ]
        assert [a.status_code for a in answers] == [200] * 40
        assert {a.json()["version"] for a in answers} == {"1"}
        expected = [trained_model().predict(_frame(i)).tolist() for i in range(40)]
        assert [a.json()["predictions"] for a in answers] == expected
        assert 10 <= broken.calls <= 30  # about half the requests tried the challenger
        assert app.state.opsloop.prediction_log.flush(timeout=10)
        metrics = client.get("/metrics").text
    errors = [x for x in metrics.splitlines() if x.startswith("opsloop_prediction_errors_total")]
    assert any('version="2"' in x and 'kind="model"' in x for x in errors), errors
    log = project.hook.read_predictions(project=project, model=MODEL, since=None)
    roles = log.groupby("role").size().to_dict()
    assert roles == {"champion": 40 - broken.calls, "fallback": broken.calls}
    assert set(log["model_version"]) == {"1"}


def test_a_slow_challenger_is_cut_off_and_the_champion_answers(project_factory: Any) -> None:
    project = project_factory()
    store_of(project).add(
        MODEL, SlowModel(trained_model(), 2.0), signature(), aliases=("challenger",)
    )
    app = app_for(
        project,
        canary_share=1.0,
        poll_seconds=0,
        compile_models=False,
        challenger_timeout_seconds=0.1,
        model_threads=8,
    )
    with TestClient(app) as client:
        answers = [client.post(PREDICT, json={"records": [one_row(i)]}) for i in range(3)]
        assert [a.status_code for a in answers] == [200] * 3
        assert {a.json()["version"] for a in answers} == {"1"}
        assert app.state.opsloop.prediction_log.flush(timeout=10)
    log = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert list(log["role"]) == ["fallback"] * 3


def test_fallback_off_returns_the_challenger_error(project_factory: Any) -> None:
    project = project_factory()
    store_of(project).add(MODEL, Broken(RuntimeError), signature(), aliases=("challenger",))
    app = app_for(
        project, canary_share=1.0, poll_seconds=0, compile_models=False, challenger_fallback=False
    )
    with TestClient(app) as client:
        answer = client.post(PREDICT, json={"records": [one_row()]})
    assert answer.status_code == 500 and "the model failed" in answer.json()["detail"]


def _frame(i: int) -> Any:
    from fastapi_testkit import breast_cancer, features

    return breast_cancer()[features()].iloc[[i]]

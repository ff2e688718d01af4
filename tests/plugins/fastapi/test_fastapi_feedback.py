"""Feedback: labels for earlier predictions, logged like predictions, joined by request id."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from fastapi_testkit import MODEL, app_for, breast_cancer, features, one_row

PREDICT = f"/v1/models/{MODEL}/predict"


def test_feedback_labels_join_the_prediction_log(project_factory: Any) -> None:
    project = project_factory()
    app = app_for(project)
    with TestClient(app) as client:
        ids = []
        for i in range(4):
            response = client.post(PREDICT, json={"records": [one_row(i)]})
            ids.append(response.json()["request_id"])
        rows = breast_cancer()[features()].iloc[10:13].to_dict("records")
        multi = client.post(PREDICT, json={"records": rows}, headers={"x-request-id": "multi-1"})
        assert multi.status_code == 200
        one = client.post("/v1/feedback", json={"request_id": ids[0], "label": 1})
        assert one.status_code == 202 and one.json() == {"accepted": 1, "dropped": 0}
        batch = client.post(
            "/v1/feedback",
            json={
                "items": [
                    {"request_id": ids[1], "label": 0},
                    {"request_id": "multi-1", "row": 2, "label": 1},
                    {"request_id": ids[0], "label": 0},  # a correction: the newest wins
                    {"request_id": "never-seen", "label": 1},
                ]
            },
        )
        assert batch.status_code == 202 and batch.json()["accepted"] == 4
        state = app.state.opsloop
        assert state.prediction_log.flush(timeout=10) and state.feedback_log.flush(timeout=10)
        metrics = client.get("/metrics").text
        assert f'opsloop_feedback_rows_total{{model="{MODEL}",outcome="written"}} 5.0' in metrics
    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    labels = logged.set_index(["request_id", "row"])["label"]
    assert labels[(ids[0], 0)] == 0 and labels[(ids[1], 0)] == 0
    assert labels[("multi-1", 2)] == 1
    assert labels.isna().sum() == len(logged) - 3  # rows without feedback have no label
    assert str(logged["label"].dtype).startswith(("float", "int"))


def test_feedback_is_validated_field_by_field(project_factory: Any) -> None:
    client = TestClient(app_for(project_factory()))
    cases = [
        ({"request_id": "r1"}, ["label"]),
        ({"request_id": "bad id!", "label": 1}, ["request_id"]),
        ({"request_id": "r1", "label": [1, 2]}, ["label"]),
        ({"request_id": "r1", "label": None}, ["label"]),
        ({"request_id": "r1", "row": -1, "label": 1}, ["row"]),
        ({"request_id": "r1", "label": 1, "extra": True}, ["extra"]),
        ({"items": []}, ["items"]),
    ]
    for body, fields in cases:
        response = client.post("/v1/feedback", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["fields"] == fields, (body, response.json())
    for raw in (b"{nope", b"[1]", b"null", b'"text"'):
        response = client.post(
            "/v1/feedback", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, raw


def test_string_and_boolean_labels_are_kept_as_sent(project_factory: Any) -> None:
    project = project_factory()
    app = app_for(project)
    with TestClient(app) as client:
        a = client.post(PREDICT, json={"records": [one_row(0)]}).json()["request_id"]
        b = client.post(PREDICT, json={"records": [one_row(1)]}).json()["request_id"]
        labels = [{"request_id": a, "label": "malignant"}, {"request_id": b, "label": True}]
        assert client.post("/v1/feedback", json={"items": labels}).status_code == 202
        assert app.state.opsloop.feedback_log.flush(timeout=10)
        assert app.state.opsloop.prediction_log.flush(timeout=10)
    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert logged.set_index("request_id")["label"].to_dict() == {a: "malignant", b: True}

"""A real uvicorn server on 127.0.0.1, real HTTP requests, a real scikit-learn model."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
from fastapi_testkit import MODEL, breast_cancer, features, trained_model
from prometheus_client.parser import text_string_to_metric_families

PREDICT = f"/v1/models/{MODEL}/predict"


def rows(start: int, stop: int) -> Any:
    return breast_cancer()[features()].iloc[start:stop]


def expected(frame: Any) -> list[int]:
    return trained_model().predict(frame).tolist()


def metric_samples(client: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sample(samples: dict[Any, float], metric: str, **labels: str) -> float:
    return samples.get((metric, frozenset(labels.items())), 0.0)


# ---------------------------------------------------------------------- predict
def test_predict_records_match_the_models_own_predictions(live: dict[str, Any]) -> None:
    frame = rows(0, 40)
    response = live["client"].post(PREDICT, json={"records": frame.to_dict(orient="records")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL and body["version"] == "1"
    assert body["predictions"] == expected(frame)
    assert set(body["predictions"]) == {0, 1}  # both classes present in these rows
    np.testing.assert_allclose(body["probabilities"], trained_model().predict_proba(frame))
    assert response.headers["x-request-id"] == body["request_id"]


def test_predict_split_format_with_shuffled_columns(live: dict[str, Any]) -> None:
    frame = rows(100, 130)
    columns = list(reversed(features()))
    payload = {"columns": columns, "data": frame[columns].to_numpy().tolist()}
    response = live["client"].post(PREDICT, json=payload)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected(frame)


def test_predict_422_names_each_bad_field(live: dict[str, Any]) -> None:
    good = rows(0, 2).to_dict(orient="records")
    bad = dict(good[1])
    del bad["mean_radius"]
    bad["mean_texture"] = "not a number"
    bad["bogus_feature"] = 1.0
    response = live["client"].post(PREDICT, json={"records": [good[0], bad]})
    assert response.status_code == 422
    body = response.json()
    assert body["fields"] == ["bogus_feature", "mean_radius", "mean_texture"]
    locs = {tuple(e["loc"]): e["msg"] for e in body["errors"]}
    assert locs[("records", 1, "mean_radius")] == "field required"
    assert "unknown field" in locs[("records", 1, "bogus_feature")]
    assert "valid number" in locs[("records", 1, "mean_texture")]
    assert "records[1].mean_radius: field required" in body["detail"]


def test_predict_split_422_names_missing_and_unknown_columns(live: dict[str, Any]) -> None:
    columns = [*features()[1:], "extra_col"]
    response = live["client"].post(PREDICT, json={"columns": columns, "data": [[1.0] * 30]})
    assert response.status_code == 422
    assert response.json()["fields"] == ["extra_col", "mean_radius"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2, 3]", "body must be a JSON object"),
        (b'{"records": []}', "non-empty list"),
        (b'{"records": [1, 2]}', "row must be an object"),
        (b'{"record": [{}]}', "unknown key"),
        (b'{"columns": ["mean_radius"]}', "data: field required"),
        (b'{"records": [{"mean_radius": NaN}]}', "finite number"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_input_is_422_never_500(live: dict[str, Any], body: bytes, needle: str) -> None:
    response = live["client"].post(
        PREDICT, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"]


def test_unknown_model_is_404(live: dict[str, Any]) -> None:
    response = live["client"].post("/v1/models/nope/predict", json={"records": [{}]})
    assert response.status_code == 404
    assert "this server serves 'breast_cancer'" in response.json()["detail"]


# ---------------------------------------------------------------------- MLflow /invocations
def mlflow_payloads(frame: Any) -> dict[str, Any]:
    records = frame.to_dict(orient="records")
    return {
        "dataframe_split": {"dataframe_split": frame.to_dict(orient="split", index=False)},
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs (columns)": {"inputs": frame.to_dict(orient="list")},
        "inputs (rows in signature order)": {"inputs": frame.to_numpy().tolist()},
    }


@pytest.mark.parametrize("fmt", list(mlflow_payloads(rows(0, 1))))
def test_invocations_accepts_mlflow_formats(live: dict[str, Any], fmt: str) -> None:
    frame = rows(200, 230)
    response = live["client"].post("/invocations", json=mlflow_payloads(frame)[fmt])
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(frame)}


def test_invocations_accepts_csv(live: dict[str, Any]) -> None:
    frame = rows(300, 320)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    response = live["client"].post(
        "/invocations", content=buffer.getvalue(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected(frame)


def test_invocations_errors_use_mlflow_shape(live: dict[str, Any]) -> None:
    client = live["client"]
    both = {"dataframe_records": [], "instances": []}
    response = client.post("/invocations", json=both)
    assert response.status_code == 400
    assert response.json()["error_code"] == "BAD_REQUEST"
    assert "exactly one of the input fields" in response.json()["message"]
    record = rows(0, 1).to_dict(orient="records")[0] | {"mean_area": "big"}
    response = client.post("/invocations", json={"dataframe_records": [record]})
    assert response.status_code == 400
    assert "dataframe_records[0].mean_area" in response.json()["message"]
    response = client.post("/invocations", content=b"x", headers={"content-type": "text/xml"})
    assert response.status_code == 415


# ---------------------------------------------------------------------- ops endpoints
def test_health_ready_version(live: dict[str, Any]) -> None:
    client = live["client"]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    version = client.get("/version").json()
    assert version["name"] == MODEL and version["version"] == "1"
    assert version["aliases"] == ["champion"]
    assert version["uri"] == f"models:/{MODEL}/1"


def test_openapi_shows_signature_fields(live: dict[str, Any]) -> None:
    spec = live["client"].get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    row = schemas["Breast_cancerRow"]
    assert set(row["properties"]) == set(features())
    assert row["properties"]["mean_radius"]["type"] == "number"
    assert row["additionalProperties"] is False
    assert sorted(row["required"]) == sorted(features())
    body = spec["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    assert body["schema"]["$ref"] == "#/components/schemas/PredictRequest"
    branches = [schemas[b["$ref"].rsplit("/", 1)[1]] for b in schemas["PredictRequest"]["anyOf"]]
    assert [sorted(b["required"]) for b in branches] == [["records"], ["columns", "data"]]
    assert branches[1]["properties"]["data"]["items"]["items"]["type"] == "number"
    formats = [schemas[b["$ref"].rsplit("/", 1)[1]] for b in schemas["InvocationsRequest"]["anyOf"]]
    assert [b["required"] for b in formats] == [
        ["dataframe_split"],
        ["dataframe_records"],
        ["instances"],
        ["inputs"],
    ]
    (name,) = spec["paths"]["/v1/models/{name}/predict"]["post"]["parameters"]
    assert name["schema"] == {"type": "string", "enum": [MODEL]}
    assert "FeedbackRequest" in schemas and "PromoteRequest" in schemas
    admin = spec["paths"]["/admin/promote"]["post"]
    assert admin["security"] == [{"AdminToken": []}]
    assert spec["components"]["securitySchemes"]["AdminToken"]["scheme"] == "bearer"


def test_metrics_are_valid_prometheus_text(live: dict[str, Any]) -> None:
    client = live["client"]
    before = metric_samples(client)
    for start in (0, 10, 20):
        assert client.post(PREDICT, json={"records": rows(start, start + 5).to_dict("records")})
    assert client.post(PREDICT, json={"records": [{}]}).status_code == 422
    after = metric_samples(client)
    route = {"route": "/v1/models/{name}/predict", "method": "POST"}
    name = "opsloop_http_requests_total"
    assert (
        sample(after, name, **route, status="200") - sample(before, name, **route, status="200")
        == 3
    )
    assert (
        sample(after, name, **route, status="422") - sample(before, name, **route, status="422")
        == 1
    )
    count = "opsloop_http_request_duration_seconds_count"
    assert sample(after, count, **route) - sample(before, count, **route) == 4
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (n, labels), value in after.items()
        if n == "opsloop_http_request_duration_seconds_bucket"
        and dict(labels)["route"] == route["route"]
    )
    assert buckets[-1][0] == float("inf") and buckets[-1][1] == sample(after, count, **route)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(buckets))
    scored = "opsloop_prediction_rows_total"
    labels = {"model": MODEL, "version": "1", "role": "champion"}
    assert sample(after, scored, **labels) - sample(before, scored, **labels) == 15
    info = {"name": MODEL, "version": "1", "uri": f"models:/{MODEL}/1", "slot": "champion"}
    assert sample(after, "opsloop_model_info", **info) == 1
    assert sample(after, "opsloop_http_requests_total", route="/metrics", method="GET",
                  status="200") >= 1  # fmt: skip


# ---------------------------------------------------------------------- serve hooks
def test_hook_after_predict_sees_each_request(live: dict[str, Any]) -> None:
    frame = rows(50, 57)
    response = live["client"].post(
        PREDICT, json={"records": frame.to_dict("records")}, headers={"x-request-id": "req-hooks-1"}
    )
    assert response.status_code == 200
    assert response.json()["request_id"] == "req-hooks-1"
    assert response.headers["x-model-version"] == "1"
    assert live["handle"].app.state.opsloop.scorer.after.drain(timeout=10)
    recorder = live["recorder"]
    (before,) = recorder.of("before", "req-hooks-1")
    (after,) = recorder.of("after", "req-hooks-1")
    assert before == {"request_id": "req-hooks-1", "rows": 7, "version": "1", "outputs": None}
    assert after["outputs"] == expected(frame) and after["rows"] == 7
    assert after["latency_ms"] > 0
    assert recorder.of("error", "req-hooks-1") == []


@pytest.mark.parametrize(("refuse", "status"), [("yes", 400), ("403", 403)])
def test_hook_before_predict_refusal_becomes_4xx(
    live: dict[str, Any], refuse: str, status: int
) -> None:
    request_id = f"req-refuse-{refuse}"
    response = live["client"].post(
        PREDICT,
        json={"records": rows(0, 1).to_dict("records")},
        headers={"x-test-refuse": refuse, "x-request-id": request_id},
    )
    assert response.status_code == status
    assert response.json()["detail"] in (
        "refused by the test policy",
        "caller may not use this model",
    )
    assert live["handle"].app.state.opsloop.scorer.after.drain(timeout=10)
    assert live["recorder"].of("after", request_id) == []


def test_hook_on_predict_error_on_a_model_error_not_500(live: dict[str, Any]) -> None:
    response = live["client"].post(
        "/invocations",
        json={"dataframe_records": rows(0, 3).to_dict("records")},
        headers={"x-test-break": "1", "x-request-id": "req-broken"},
    )
    assert response.status_code == 400
    assert "could not score these rows" in response.json()["message"]
    assert live["handle"].app.state.opsloop.scorer.after.drain(timeout=10)
    (error,) = live["recorder"].of("error", "req-broken")
    assert isinstance(error["error"], ValueError)
    assert live["recorder"].of("after", "req-broken") == []

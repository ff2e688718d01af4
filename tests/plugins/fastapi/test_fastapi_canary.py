"""Canary (a share of traffic to the challenger, sticky by key) and shadow scoring."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import (
    MODEL,
    app_for,
    breast_cancer,
    features,
    one_row,
    signature,
    store_of,
    trained_model,
)
from opsloop_fastapi.predlog import model_dir, read_log
from sklearn.linear_model import LogisticRegression

PREDICT = f"/v1/models/{MODEL}/predict"


def add_challenger(project: Any) -> Any:
    """Version 2, @challenger: a much weaker model, so its answers differ from version 1."""
    data = breast_cancer()
    weak = LogisticRegression(C=1e-6, max_iter=200).fit(data[features()], data["target"])
    return store_of(project).add(MODEL, weak, signature(), aliases=("challenger",))


async def versions_for(app: Any, requests: int, keys: list[str] | None = None) -> list[str]:
    """The version that answered each of ``requests`` posts (in-process, 50 at a time)."""
    transport = httpx.ASGITransport(app=app)
    body = {"dataframe_records": [one_row()]}
    out: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

        async def one(i: int) -> str:
            headers = {"x-request-key": keys[i]} if keys else {}
            response = await client.post("/invocations", json=body, headers=headers)
            assert response.status_code == 200, response.text
            return response.headers["x-model-version"]

        for start in range(0, requests, 50):
            batch = range(start, min(requests, start + 50))
            out += await asyncio.gather(*(one(i) for i in batch))
    return out


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_canary_split_holds_within_one_point_over_10000_requests(
    project_factory: Any, share: float
) -> None:
    project = project_factory()
    add_challenger(project)
    app = app_for(project, canary_share=share, poll_seconds=0)
    counts = Counter(asyncio.run(versions_for(app, 10_000)))
    assert set(counts) == {"1", "2"}
    assert abs(counts["2"] / 10_000 - share) <= 0.01, counts
    metrics = TestClient(app).get("/metrics").text
    assert (
        f'opsloop_prediction_rows_total{{model="{MODEL}",role="challenger",version="2"}}' in metrics
    )


def test_canary_is_sticky_by_request_key(project_factory: Any) -> None:
    project = project_factory()
    add_challenger(project)
    app = app_for(project, canary_share=0.1, poll_seconds=0)
    keys = [f"user-{i}" for i in range(10_000)]
    first = asyncio.run(versions_for(app, 10_000, keys))
    assert abs(first.count("2") / 10_000 - 0.1) <= 0.01  # these keys split within a point
    sample = keys[:300] * 2
    again = asyncio.run(versions_for(app, len(sample), sample))
    assert again == first[:300] * 2  # every key lands where it landed before


def test_canary_off_or_without_challenger_serves_the_champion(project_factory: Any) -> None:
    project = project_factory()
    app = app_for(project, canary_share=0.5, poll_seconds=0)  # no @challenger registered
    assert set(asyncio.run(versions_for(app, 200))) == {"1"}
    version = TestClient(app).get("/version").json()
    assert version["challenger"] is None and version["canary_share"] == 0.5
    add_challenger(project)
    assert set(asyncio.run(versions_for(app_for(project, poll_seconds=0), 200))) == {"1"}


def test_shadow_scores_a_copy_logs_it_and_never_returns_it(project_factory: Any) -> None:
    project = project_factory()
    challenger = add_challenger(project)
    app = app_for(project, shadow=True, poll_seconds=0)
    frame = breast_cancer()[features()].iloc[:30]
    with TestClient(app) as client:
        ids = []
        for i, record in enumerate(frame.to_dict("records")):
            response = client.post(
                PREDICT, json={"records": [record]}, headers={"x-request-id": f"shadow-{i}"}
            )
            assert response.status_code == 200
            assert response.json()["version"] == "1"
            assert (
                response.json()["predictions"] == trained_model().predict(frame.iloc[[i]]).tolist()
            )
            ids.append(f"shadow-{i}")
        state = app.state.opsloop
        assert state.shadow.drain(timeout=10) and state.shadow.scored == 30
        assert state.prediction_log.flush(timeout=10)
        assert 'outcome="scored"' in client.get("/metrics").text
    everything = read_log(model_dir(project.home / "predictions", MODEL), MODEL, roles=None)
    assert everything is not None
    shadow = everything[everything["role"] == "shadow"].set_index("request_id")
    served = everything[everything["role"] == "champion"].set_index("request_id")
    assert sorted(shadow.index) == sorted(ids) == sorted(served.index)
    assert set(shadow["model_version"]) == {challenger.version}
    weak = store_of(project).load(challenger)
    assert shadow.loc[ids, "prediction"].tolist() == weak.predict(frame).tolist()
    served_only = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert set(served_only["role"]) == {"champion"} and len(served_only) == 30


def test_shadow_failure_never_affects_the_response(project_factory: Any) -> None:
    project = project_factory()
    data = breast_cancer()
    narrow = LogisticRegression().fit(data[["mean_area"]], data["target"])
    store_of(project).add(
        MODEL,
        narrow,
        {"inputs": [{"name": "mean_area", "type": "double"}]},
        aliases=("challenger",),
    )
    app = app_for(project, shadow=True, poll_seconds=0)
    with TestClient(app) as client:
        for i in range(5):
            assert client.post(PREDICT, json={"records": [one_row(i)]}).status_code == 200
        state = app.state.opsloop
        assert state.shadow.drain(timeout=10)
        assert state.shadow.failed == 5 and state.shadow.scored == 0
        assert 'outcome="failed"} 5.0' in client.get("/metrics").text

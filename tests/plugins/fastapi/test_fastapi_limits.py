"""Limits: body size (413), timeout (504), rate (429 + Retry-After, in process and in Redis)."""

from __future__ import annotations

import secrets
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import MODEL, SlowModel, app_for, one_row, signature, store_of, trained_model

from opsloop import hookimpl
from opsloop.errors import ConfigError

PREDICT = f"/v1/models/{MODEL}/predict"


def client_for(project: Any, **settings: Any) -> TestClient:
    return TestClient(app_for(project, **settings), raise_server_exceptions=False)


# ---------------------------------------------------------------------- 413
def test_body_over_the_limit_is_413_before_it_is_read(project_factory: Any) -> None:
    project = project_factory()
    with client_for(project, max_body_bytes=2_000) as client:
        small = {"records": [one_row()]}
        assert client.post(PREDICT, json=small).status_code == 200
        big = {"records": [one_row(i) for i in range(40)]}
        response = client.post(PREDICT, json=big)
        assert response.status_code == 413
        assert "larger than 2000 bytes" in response.json()["detail"]
        mlflow = client.post("/invocations", json={"dataframe_records": big["records"]})
        assert mlflow.status_code == 413
        assert mlflow.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        feedback = client.post(
            "/v1/feedback", json={"items": [{"request_id": "a", "label": 1}] * 200}
        )
        assert feedback.status_code == 413
        metrics = client.get("/metrics").text
        assert f'kind="too_large",model="{MODEL}",version="1"}} 2.0' in metrics


def test_chunked_body_is_cut_off_at_the_limit(project_factory: Any) -> None:
    """A real server answers 413 while a chunked upload (no Content-Length) is still going."""
    from opsloop_fastapi.server import serve_in_thread

    project = project_factory()
    app = app_for(project, max_body_bytes=10_000)
    with serve_in_thread(app, "127.0.0.1", 0) as handle:
        for path in ("/invocations", "/v1/feedback"):
            sock = socket.create_connection(("127.0.0.1", handle.port), timeout=10)
            try:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n".encode()
                )
                answer = b""
                sent = 0
                while sent < 100 and not answer:  # up to 100 KiB
                    sock.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
                    sent += 1
                    readable, _, _ = select.select([sock], [], [], 0.02)
                    if readable:
                        answer = sock.recv(65536)
                for _ in range(100):
                    if answer:
                        break
                    readable, _, _ = select.select([sock], [], [], 0.1)
                    if readable:
                        answer = sock.recv(65536)
            finally:
                sock.close()
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert sent < 100  # answered while the client was still sending


# ---------------------------------------------------------------------- 504
def test_slow_prediction_is_504_and_the_server_keeps_serving(project_factory: Any) -> None:
    project = project_factory()
    store = store_of(project)
    store.add(MODEL, SlowModel(trained_model(), 1.5), signature(), aliases=("slow",))
    with client_for(project, alias="slow", timeout_seconds=0.3, poll_seconds=0) as slow:
        started = time.monotonic()
        response = slow.post(
            PREDICT, json={"records": [one_row()]}, headers={"x-request-id": "r-slow"}
        )
        waited = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert waited < 1.2  # answered at the deadline, not when the model finished
    assert (
        "longer than 0.3 s" in response.json()["detail"] and "r-slow" in response.json()["detail"]
    )
    with client_for(project, alias="slow", timeout_seconds=0.3, poll_seconds=0) as slow:
        response = slow.post("/invocations", json={"dataframe_records": [one_row()]})
        assert response.status_code == 504
        assert response.json()["error_code"] == "DEADLINE_EXCEEDED"
        assert 'kind="timeout"' in slow.get("/metrics").text
        assert slow.get("/health").status_code == 200  # the event loop was never blocked


def test_fast_prediction_is_not_timed_out(project_factory: Any) -> None:
    project = project_factory()
    with client_for(project, timeout_seconds=0.5) as client:
        for i in range(20):
            assert client.post(PREDICT, json={"records": [one_row(i)]}).status_code == 200


# ---------------------------------------------------------------------- 429
def test_rate_limit_is_429_with_retry_after_per_client_key(project_factory: Any) -> None:
    project = project_factory()
    with client_for(
        project, rate_limit=2.0, rate_limit_burst=3, rate_limit_key="x-api-key"
    ) as client:
        body = {"records": [one_row()]}
        alice = {"x-api-key": "alice"}
        codes = [client.post(PREDICT, json=body, headers=alice).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        limited = client.post(PREDICT, json=body, headers=alice)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "2 requests/s per client (burst 3)" in limited.json()["detail"]
        # another key has its own bucket; the MLflow route shares the limit and its shape
        assert client.post(PREDICT, json=body, headers={"x-api-key": "bob"}).status_code == 200
        mlflow = client.post("/invocations", json={"dataframe_records": [one_row()]}, headers=alice)
        assert mlflow.status_code == 429
        assert mlflow.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        time.sleep(0.6)  # 2 tokens per second: one request is allowed again
        assert client.post(PREDICT, json=body, headers=alice).status_code == 200
        assert client.get("/health").status_code == 200  # ops routes are never limited


def test_rate_limit_without_a_key_header_uses_the_client_address(project_factory: Any) -> None:
    project = project_factory()
    with client_for(project, rate_limit=1.0, rate_limit_burst=1) as client:
        body = {"dataframe_records": [one_row()]}
        assert client.post("/invocations", json=body).status_code == 200
        assert client.post("/invocations", json=body).status_code == 429


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The local Redis (127.0.0.1:6379, database 15); the test's keys are removed after."""
    import redis

    url = "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    client.ping()
    yield url
    for key in client.scan_iter("opsloop:ratelimit:*"):
        client.delete(key)
    client.close()


def test_redis_rate_limit_is_shared_by_replicas(project_factory: Any, redis_url: str) -> None:
    project = project_factory()
    key = {"x-api-key": "client-" + secrets.token_hex(4)}
    options = {
        "rate_limit": 0.5,
        "rate_limit_burst": 4,
        "rate_limit_key": "x-api-key",
        "rate_limit_redis": redis_url,
    }
    body = {"records": [one_row()]}
    with client_for(project, **options) as first, client_for(project, **options) as second:
        codes = [
            (first if i % 2 else second).post(PREDICT, json=body, headers=key).status_code
            for i in range(8)
        ]
        assert codes.count(200) == 4 and codes[4:] == [429] * 4  # one bucket for both replicas
        limited = first.post(PREDICT, json=body, headers=key)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_unreachable_redis_lets_requests_through(project_factory: Any) -> None:
    project = project_factory()
    with client_for(
        project, rate_limit=1.0, rate_limit_burst=1, rate_limit_redis="redis://127.0.0.1:1/0"
    ) as client:
        for _ in range(3):  # fail open: the limiter never takes scoring down
            assert client.post(PREDICT, json={"records": [one_row()]}).status_code == 200
        assert client.app.state.opsloop.limiter.errors == 3


def test_bad_limit_settings_are_config_errors(project_factory: Any) -> None:
    project = project_factory(config="[plugin.fastapi]\nmax_body_bytes = 0\n")
    with pytest.raises(ConfigError, match=r"plugin\.fastapi\.max_body_bytes"):
        app_for(project)
    project = project_factory(config="[plugin.fastapi]\ncanary_share = 1.5\n")
    with pytest.raises(ConfigError, match=r"plugin\.fastapi\.canary_share"):
        app_for(project)


class BrokenGuard:
    """A before_predict hook with a bug (not an OpsloopError)."""

    @staticmethod
    @hookimpl
    def before_predict(context: Any) -> None:
        raise KeyError("a bug in a guard")


def test_a_hook_bug_is_a_clean_500_with_the_request_id(project_factory: Any) -> None:
    project = project_factory(("broken", BrokenGuard()))
    with client_for(project) as client:
        response = client.post(
            PREDICT, json={"records": [one_row()]}, headers={"x-request-id": "r-bug"}
        )
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        assert response.json()["detail"] == (
            "the server failed (KeyError); see the server log, request_id r-bug"
        )
        assert client.get("/health").status_code == 200

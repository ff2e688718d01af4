"""Slow clients against a real uvicorn on loopback: deadlines on headers and bodies, a cap."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi_testkit import MODEL, app_for, one_row

PREDICT = f"/v1/models/{MODEL}/predict"
HALF_BODY = (
    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"dataframe_records": ['
)
HALF_HEADERS = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: appl"


@contextmanager
def served(project: Any, **settings: Any) -> Iterator[Any]:
    from opsloop_fastapi.server import serve_in_thread

    with serve_in_thread(app_for(project, **settings), "127.0.0.1", 0) as handle:
        yield handle


def open_sockets(port: int, count: int, payload: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(payload)
        sockets.append(sock)
    return sockets


def read_until_closed(sock: socket.socket, limit: float = 15.0) -> bytes | None:
    """Everything the server sent before it closed; None if still open after ``limit`` s."""
    received = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
    return None


def score(client: httpx.Client) -> int:
    return client.post(PREDICT, json={"records": [one_row()]}).status_code


def test_half_sent_bodies_get_408_and_half_sent_headers_are_closed(project_factory: Any) -> None:
    project = project_factory()
    settings = {"body_timeout_seconds": 0.5, "header_timeout_seconds": 0.5}
    with served(project, **settings) as handle:
        bodies = open_sockets(handle.port, 60, HALF_BODY)
        headers = open_sockets(handle.port, 40, HALF_HEADERS)
        try:
            with httpx.Client(base_url=handle.url, trust_env=False, timeout=10) as client:
                assert score(client) == 200  # the others are served meanwhile
                answers = [read_until_closed(s) for s in bodies]
                silent = [read_until_closed(s) for s in headers]
                assert score(client) == 200
                metrics = client.get("/metrics").text
        finally:
            for sock in bodies + headers:
                sock.close()
    assert all(a is not None for a in answers), "a half-sent body was never dropped"
    assert {a.split(b"\r\n", 1)[0] for a in answers if a is not None} == {
        b"HTTP/1.1 408 Request Timeout"
    }
    first = answers[0] or b""
    assert b"connection: close" in first.lower()
    assert b"plugin.fastapi.body_timeout_seconds" in first
    assert silent == [b""] * 40  # closed without an answer: there was no request yet
    assert f'kind="body_timeout",model="{MODEL}",version="1"}} 60.0' in metrics


@pytest.mark.parametrize("protocol", ["HttpToolsHeaderDeadline", "H11HeaderDeadline"])
def test_a_trickling_header_is_cut_at_its_deadline(
    project_factory: Any, protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte every 0.1 s resets no timer: the headers' deadline runs from the first byte."""
    import opsloop_fastapi.connlimits as connlimits

    monkeypatch.setattr(connlimits, "protocol_path", lambda: f"{connlimits.__name__}:{protocol}")
    project = project_factory()
    with served(project, header_timeout_seconds=0.5) as handle:
        assert handle.server.config.http_protocol_class.__name__ == protocol
        sock = socket.create_connection(("127.0.0.1", handle.port), timeout=10)
        sent = 0
        try:
            for byte in HALF_HEADERS * 10:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                sent += 1
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable and not sock.recv(1024):
                    break
        finally:
            sock.close()
    assert sent < len(HALF_HEADERS) * 10  # closed long before the client was done


def test_a_keep_alive_connection_serves_then_waits_again(project_factory: Any) -> None:
    """The header deadline re-arms between requests and does not cut a healthy connection."""
    import http.client
    import json

    project = project_factory()
    body = json.dumps({"records": [one_row()]})
    with served(project, header_timeout_seconds=0.5, keep_alive_seconds=5) as handle:
        conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
        try:
            for _ in range(3):  # one socket throughout: http.client would raise if it closed
                conn.request("POST", PREDICT, body, {"content-type": "application/json"})
                response = conn.getresponse()
                assert response.status == 200 and response.read()
                time.sleep(0.7)  # idle past the header deadline: keep-alive rules here
            first = conn.sock
            conn.request("POST", PREDICT, body, {"content-type": "application/json"})
            assert conn.getresponse().status == 200
            assert conn.sock is first
        finally:
            conn.close()


def test_past_max_connections_new_requests_get_503_then_recover(project_factory: Any) -> None:
    project = project_factory()
    with served(project, max_connections=10, body_timeout_seconds=60) as handle:
        held = open_sockets(handle.port, 10, HALF_BODY)
        with httpx.Client(base_url=handle.url, trust_env=False, timeout=10) as client:
            try:
                refused = client.post(PREDICT, json={"records": [one_row()]})
                assert refused.status_code == 503
            finally:
                for sock in held:
                    sock.close()
            statuses = []
            for _ in range(100):  # the server notices the closed sockets on its next turn
                statuses.append(score(client))
                if statuses[-1] == 200:
                    break
                time.sleep(0.05)
            assert statuses[-1] == 200


def test_uvicorn_gets_the_connection_settings(project_factory: Any) -> None:
    from opsloop_fastapi.connlimits import CONFIG_ATTRIBUTE
    from opsloop_fastapi.server import uvicorn_config
    from opsloop_fastapi.settings import Settings

    settings = Settings(max_connections=7, keep_alive_seconds=2.5, header_timeout_seconds=3)
    config = uvicorn_config("x:y", settings, embedded=True)
    assert config.limit_concurrency == 7 and config.timeout_keep_alive == 2.5
    assert getattr(config, CONFIG_ATTRIBUTE) == 3
    assert (
        uvicorn_config("x:y", Settings(max_connections=0), embedded=True).limit_concurrency is None
    )

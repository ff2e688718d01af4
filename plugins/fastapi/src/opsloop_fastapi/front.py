"""The ASGI front of the scoring app: the hot path, limits and request metrics.

Scoring requests (``POST /v1/models/{name}/predict`` and ``POST /invocations``) are
handled here as plain ASGI, without FastAPI's routing and dependency machinery: read the
headers once, apply the rate limit and the body limit, pick champion or challenger, run
the model in a model thread under the timeout, send the bytes. Every other request goes
on to the FastAPI app, with the same body limit and metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import random
import re
import time
from random import getrandbits
from typing import TYPE_CHECKING, Any

from opsloop_fastapi.limits import (
    BodyDeadlines,
    BodyTimeout,
    BodyTooLarge,
    ClientGone,
    read_body,
    retry_after,
)
from opsloop_fastapi.scoring import Job, error_body

if TYPE_CHECKING:
    from opsloop_fastapi.served import ServedModel, Slots
    from opsloop_fastapi.state import ServingState

logger = logging.getLogger("opsloop_fastapi.front")

ROUTE_PREDICT = "/v1/models/{name}/predict"
ROUTE_INVOCATIONS = "/invocations"
ROUTE_FEEDBACK = "/v1/feedback"
_PREFIX = "/v1/models/"
_SUFFIX = "/predict"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SHUTDOWN = "shutdown"  # Front._attempt: the model threads are gone
_GOLDEN = 0.6180339887498949  # frac(phi): a low-discrepancy sequence for the canary split


def new_request_id() -> str:
    """``prd_`` + milliseconds + 32 random bits, like ``opsloop.records.new_id``.

    Request ids need to be unique, not secret: a Mersenne Twister draw costs no system call
    (``os.urandom`` does, and releases the GIL on the hot path).
    """
    return f"prd_{int(time.time() * 1000):012x}{getrandbits(32):08x}"


class Router:
    """Champion or challenger for each request: sticky by key, else an even split.

    With a request key the choice is a hash of the key (the same key always lands on the
    same side while the share stays); without one it follows a golden-ratio sequence, so
    the challenger's share of any N requests is within a few requests of ``share * N``.
    """

    def __init__(self, share: float) -> None:
        self.share = share
        self._count = itertools.count()
        self._start = random.random()

    def pick(self, slots: Slots, key: bytes | None) -> tuple[ServedModel, str]:
        challenger = slots.challenger
        if challenger is None or self.share <= 0:
            return slots.champion, "champion"
        if key:
            digest = hashlib.blake2b(key, digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 18446744073709551616.0
        else:
            point = (self._start + next(self._count) * _GOLDEN) % 1.0
        if point < self.share:
            return challenger, "challenger"
        return slots.champion, "champion"


class Front:
    """Pure ASGI middleware in front of the FastAPI app (see the module docstring)."""

    def __init__(self, app: Any, state: ServingState) -> None:
        self.app = app
        self.state = state
        settings = state.settings
        self.max_body = settings.max_body_bytes
        self.timeout = settings.timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.deadlines = BodyDeadlines(self.body_timeout)
        self.limit_header = settings.rate_limit_key.encode("latin-1")
        self.fallback = settings.challenger_fallback
        self.challenger_timeout = min(
            settings.challenger_timeout_seconds or self.timeout, self.timeout
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        method = scope["method"]
        path = scope["path"]
        if method == "POST":
            if path == ROUTE_INVOCATIONS:
                status = await self.score(scope, receive, send, "mlflow", None)
                self._observe(ROUTE_INVOCATIONS, method, status, t0)
                return
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                name = path[len(_PREFIX) : -len(_SUFFIX)]
                if name and "/" not in name:
                    status = await self.score(scope, receive, send, "v1", name)
                    self._observe(ROUTE_PREDICT, method, status, t0)
                    return
        status = await self.forward(scope, receive, send, method, path)
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        self._observe(route, method, status, t0)

    def _observe(self, route: str, method: str, status: int, t0: float) -> None:
        m = self.state.metrics
        m.child(m.requests, route, method, str(status)).inc()
        m.child(m.request_seconds, route, method).observe(time.perf_counter() - t0)

    # ------------------------------------------------------------------ scoring
    async def score(
        self, scope: dict[str, Any], receive: Any, send: Any, kind: str, name: str | None
    ) -> int:
        """Handle one scoring request; return the status sent."""
        state = self.state
        slots = state.holder.slots
        length = -1
        content_type = b""
        given_id = None
        key = None
        client_key = None
        encoding = None
        limit_header = self.limit_header
        for header, value in scope["headers"]:
            if header == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif header == b"content-type":
                content_type = value
            elif header == b"x-request-id":
                given_id = value
            elif header == b"x-request-key":
                key = value
            elif limit_header and header == limit_header:
                client_key = value
            elif header == b"content-encoding" and value.strip().lower() != b"identity":
                encoding = value
        request_id = new_request_id()
        if given_id is not None:
            text = given_id.decode("latin-1")
            if REQUEST_ID.match(text):
                request_id = text
        champion = slots.champion
        if name is not None and name != champion.ref.name:
            self._count(champion, "not_found")
            message = f"model '{name}' is not served here; this server serves '{champion.ref.name}'"
            return await _send(send, 404, error_body(kind, 404, message), request_id)
        if encoding is not None:  # a compressed body is not decoded: say so, not "bad JSON"
            self._count(champion, "input")
            message = (
                f"Content-Encoding {encoding.decode('latin-1')!r} is not supported; send the "
                "body uncompressed (max_body_bytes and the decode limits apply to it)"
            )
            return await _send(send, 415, error_body(kind, 415, message), request_id, close=True)
        limiter = state.limiter
        if limiter is not None:
            status = await self._limit(limiter, scope, client_key, kind, send, request_id)
            if status:
                self._count(champion, "rate_limited")
                return status
        if length > self.max_body:
            self._count(champion, "too_large")
            return await _send(send, 413, self._too_large(kind), request_id, close=True)
        try:
            body = await read_body(receive, self.max_body, self.deadlines)
        except BodyTooLarge:
            self._count(champion, "too_large")
            return await _send(send, 413, self._too_large(kind), request_id, close=True)
        except BodyTimeout:
            self._count(champion, "body_timeout")
            return await _send(send, 408, self._too_slow(kind), request_id, close=True)
        except ClientGone:
            return 499
        served, role = state.router.pick(slots, key)
        mime = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        job = Job(kind, served, role, body, mime, request_id, scope["headers"])
        if state.shadow_enabled and role == "champion" and slots.challenger is not None:
            job.challenger = slots.challenger
        fallback = role == "challenger" and self.fallback
        outcome = await self._attempt(job, self.challenger_timeout if fallback else self.timeout)
        if fallback and (outcome is None or job.failed):
            # The challenger failed or was too slow: the champion answers instead (logged
            # with role "fallback"), so a bad challenger never fails a client's request.
            if outcome is None:
                job.timed_out[0] = True
                self._count(served, "timeout")
            logger.warning(
                "challenger %s v%s %s on request %s; the champion answers",
                served.ref.name,
                served.ref.version,
                "timed out" if outcome is None else "failed",
                request_id,
            )
            served = slots.champion
            job = Job(kind, served, "fallback", body, mime, request_id, scope["headers"])
            outcome = await self._attempt(job, self.timeout)
        if outcome == _SHUTDOWN:
            message = "the server is shutting down; retry on another replica"
            return await _send(send, 503, error_body(kind, 503, message), request_id)
        if outcome is None:
            job.timed_out[0] = True
            self._count(served, "timeout")
            message = (
                f"the prediction took longer than {self.timeout:g} s "
                "(plugin.fastapi.timeout_seconds); request_id " + request_id
            )
            return await _send(send, 504, error_body(kind, 504, message), request_id)
        status, payload, headers, scored = outcome
        if scored is not None:
            served, role, seconds, rows = scored
            m = state.metrics
            ref = served.ref
            m.child(m.predict_seconds, ref.name, ref.version, role).observe(seconds)
            m.child(m.prediction_rows, ref.name, ref.version, role).inc(rows)
        return await _send(send, status, payload, request_id, headers)

    async def _attempt(self, job: Job, timeout: float) -> Any:
        """Run ``job`` in a model thread: its reply, None on timeout, or _SHUTDOWN."""
        state = self.state
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(state.pool, state.scorer.run, job)
        except RuntimeError:  # the model threads stopped: the server is shutting down
            return _SHUTDOWN
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return None

    async def _limit(
        self,
        limiter: Any,
        scope: dict[str, Any],
        client_key: bytes | None,
        kind: str,
        send: Any,
        request_id: str,
    ) -> int:
        if client_key is not None:
            who = "key:" + client_key.decode("latin-1")
        else:
            client = scope.get("client")
            who = "ip:" + (str(client[0]) if client else "unknown")
        wait = await limiter.take(who)
        if wait <= 0:
            return 0
        settings = self.state.settings
        after = retry_after(wait)
        message = (
            f"rate limit exceeded: {settings.rate_limit:g} requests/s per client "
            f"(burst {settings.burst}); retry after {after} s"
        )
        extra = [(b"retry-after", after.encode())]
        return await _send(send, 429, error_body(kind, 429, message), request_id, extra)

    def _too_large(self, kind: str) -> bytes:
        return error_body(
            kind,
            413,
            f"request body is larger than {self.max_body} bytes "
            "(plugin.fastapi.max_body_bytes); send fewer rows per request",
        )

    def _too_slow(self, kind: str) -> bytes:
        return error_body(
            kind,
            408,
            f"the request body did not arrive within {self.body_timeout:g} s "
            "(plugin.fastapi.body_timeout_seconds); send the whole body at once or raise "
            "plugin.fastapi.body_timeout_seconds",
        )

    def _count(self, served: ServedModel, kind: str) -> None:
        m = self.state.metrics
        m.child(m.prediction_errors, served.ref.name, served.ref.version, kind).inc()

    # ------------------------------------------------------------------ everything else
    async def forward(
        self, scope: dict[str, Any], receive: Any, send: Any, method: str, path: str
    ) -> int:
        """Pass a request on to the FastAPI app, with the body limit and the rate limit."""
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if method == "POST" and path == ROUTE_FEEDBACK and self.state.limiter is not None:
            client_key = None
            if self.limit_header:
                for header, value in scope["headers"]:
                    if header == self.limit_header:
                        client_key = value
            limited = await self._limit(
                self.state.limiter, scope, client_key, "v1", send, new_request_id()
            )
            if limited:
                return limited
        for header, value in scope["headers"]:
            if header == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return await _send(send, 413, self._too_large("v1"), None, close=True)
        if method in ("POST", "PUT", "PATCH"):  # read the body here, under the limit
            try:
                body = await read_body(receive, self.max_body, self.deadlines)
            except BodyTooLarge:
                return await _send(send, 413, self._too_large("v1"), None, close=True)
            except BodyTimeout:
                return await _send(send, 408, self._too_slow("v1"), None, close=True)
            except ClientGone:
                return 499
            pending = [body]

            async def replay() -> dict[str, Any]:
                if pending:
                    return {"type": "http.request", "body": pending.pop(), "more_body": False}
                return await receive()  # type: ignore[no-any-return]

            await self.app(scope, replay, send_status)
        else:
            await self.app(scope, receive, send_status)
        return status


async def _send(
    send: Any,
    status: int,
    body: bytes,
    request_id: str | None,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    close: bool = False,
) -> int:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if request_id is not None:
        raw.append((b"x-request-id", request_id.encode()))
    if headers:
        raw += headers
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
    return status

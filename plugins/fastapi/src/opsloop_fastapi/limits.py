"""Request limits: a token bucket per client key (in process or in Redis) and body size.

The in-process limiter keeps one bucket per key and runs on the event loop (no lock: one
thread touches it). The Redis limiter runs the same bucket as a Lua script, atomically,
so replicas share one limit per key; when Redis cannot be reached the request is let
through and counted, since a monitoring dependency must not take scoring down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from typing import Any

_monotonic = time.monotonic

logger = logging.getLogger("opsloop_fastapi.limits")

MAX_KEYS = 100_000  # buckets kept in memory; idle full buckets are dropped beyond this


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; one token per request."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}

    async def take(self, key: str) -> float:
        """0 when the request may go; else the seconds until a token is available."""
        return self.take_now(key, time.monotonic())

    def take_now(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [
            k for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]  # fmt: skip
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= MAX_KEYS:  # still full of busy clients: start afresh
            self._buckets.clear()

    async def close(self) -> None:
        return None


_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or t
tokens = math.min(burst, tokens + math.max(0, t - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisTokenBucket:
    """The same bucket in Redis (``redis.asyncio``), shared by every replica."""

    def __init__(self, url: str, rate: float, burst: int, *, prefix: str) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            from opsloop.errors import ConfigError

            raise ConfigError(
                "plugin.fastapi.rate_limit_redis needs the redis client: pip install redis"
            ) from None
        self.url = url
        self.rate = float(rate)
        self.burst = float(burst)
        self.prefix = prefix
        self.errors = 0
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self._script = self._client.register_script(_LUA)
        self._warned_at = 0.0

    async def take(self, key: str) -> float:
        try:
            wait = await self._script(keys=[f"{self.prefix}{key}"], args=[self.rate, self.burst])
        except Exception as exc:  # noqa: BLE001 - fail open: the limiter must not stop scoring
            self.errors += 1
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                logger.warning(
                    "rate limiter: Redis unavailable (%s); letting requests through", exc
                )
            return 0.0
        return float(wait)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection is not an error
            await self._client.aclose()


def make_limiter(settings: Any, model: str) -> Any:
    """The configured limiter, or None when ``rate_limit`` is 0."""
    if settings.rate_limit <= 0:
        return None
    if settings.rate_limit_redis:
        return RedisTokenBucket(
            settings.rate_limit_redis,
            settings.rate_limit,
            settings.burst,
            prefix=f"opsloop:ratelimit:{model}:",
        )
    return TokenBucket(settings.rate_limit, settings.burst)


class FailureWindow:
    """Failed attempts per client in a sliding window: locked once ``limit`` are in it.

    Used for the admin endpoints: a client that fails ``limit`` times within ``window``
    seconds is refused (429) until the oldest of those failures leaves the window, whatever
    token it presents, so guessing the token gets no faster than ``limit`` per window.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = float(window)
        self._failures: dict[str, deque[float]] = {}

    def locked(self, key: str, now: float) -> float:
        """0 when ``key`` may try; else the seconds until it may try again."""
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.001, times[0] + self.window - now)

    def fail(self, key: str, now: float) -> bool:
        """Record a failure; True when it is the one that locks ``key``."""
        times = self._recent(key, now)
        if times is None:
            if len(self._failures) >= MAX_KEYS:
                self._prune(now)
            times = self._failures[key] = deque(maxlen=self.limit)
        times.append(now)
        return len(times) == self.limit

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (it authenticated)."""
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def _prune(self, now: float) -> None:
        stale = [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]
        for key in stale:
            del self._failures[key]
        if len(self._failures) >= MAX_KEYS:  # a flood of distinct clients: start afresh
            self._failures.clear()


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class BodyTooLarge(Exception):
    """The request body is larger than ``max_body_bytes``."""


class ClientGone(Exception):
    """The client disconnected before it sent the whole body."""


class BodyTimeout(Exception):
    """The whole body did not arrive within ``body_timeout_seconds`` (a slow client)."""


class BodyDeadlines:
    """A deadline on reading each request body, with one timer per server, not per request.

    ``asyncio.timeout`` around every body read cost about 12 µs a request here (a timer
    handle scheduled and cancelled), some 8% of a one-row prediction at 7,000 requests/s.
    Here a read registers its task and deadline in a dict (about 2 µs in all), and one
    sweep, every quarter of the deadline (at most every second) while reads are pending,
    cancels the reads past it: a read ends between ``seconds`` and ``seconds`` plus a
    quarter. The cancelled read becomes :class:`BodyTimeout`. A read that finishes without
    waiting (the body came with the headers, the usual case) never meets the sweep.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.every = min(1.0, self.seconds / 4)
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def read(self, receive: Any, limit: int) -> bytes:
        """The body (see :func:`read_body`), or BodyTimeout once the deadline passed."""
        task: Any = asyncio.current_task()
        reading = self._reading
        reading[task] = _monotonic() + self.seconds
        loop = task.get_loop()
        if self._handle is None or self._loop is not loop:  # a new loop: a new timer
            self._schedule(loop)
        try:
            return await _read_body(receive, limit)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            raise BodyTimeout() from None
        finally:
            del reading[task]
            self._expired.discard(task)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_later(self.every, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        now = _monotonic()
        for task, deadline in list(self._reading.items()):
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._reading and self._loop is not None and not self._loop.is_closed():
            self._schedule(self._loop)


async def read_body(receive: Any, limit: int, deadlines: BodyDeadlines | None = None) -> bytes:
    """The request body, refused past ``limit`` bytes or when not all in by the deadline."""
    if deadlines is None:
        return await _read_body(receive, limit)
    return await deadlines.read(receive, limit)


async def _read_body(receive: Any, limit: int) -> bytes:
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge()
        return body  # type: ignore[no-any-return]
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:
            raise BodyTooLarge()
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    if size > limit:
        raise BodyTooLarge()
    return b"".join(chunks)

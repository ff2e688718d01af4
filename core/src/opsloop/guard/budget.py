"""Budgets: requests and tokens per caller per window, in memory or shared through Redis.

:class:`MemoryBudget` counts in one process (one gateway); :class:`RedisBudget` counts in
Redis so every replica shares one budget (fixed windows: ``INCRBY`` on a key per caller and
window, expiring with it). ``admit`` counts a request and the prompt's tokens and says
whether it may go on; ``charge`` adds the completion's tokens afterwards, so a caller who
spent the window's tokens is refused on the next request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opsloop.errors import OpsloopError


@dataclass(frozen=True)
class Limits:
    """At most ``requests`` requests and ``tokens`` tokens per ``window`` seconds (None: no
    limit)."""

    requests: int | None = None
    tokens: int | None = None
    window: float = 60.0


@dataclass(frozen=True)
class Decision:
    """``allowed``, else which limit (``requests`` or ``tokens``) and seconds to wait."""

    allowed: bool
    limit: str = ""
    retry_after: float = 0.0
    used_requests: int = 0
    used_tokens: int = 0


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: about four characters per token."""
    return math.ceil(len(text) / 4)


class Budget(Protocol):
    limits: Limits

    def admit(self, caller: str, tokens: int = 0) -> Decision: ...

    def charge(self, caller: str, tokens: int) -> None: ...


def _decide(limits: Limits, requests: int, tokens: int, retry: float, fits: bool) -> Decision:
    if limits.requests is not None and requests > limits.requests:
        return Decision(False, "requests", retry, requests, tokens)
    if limits.tokens is not None and not fits:
        return Decision(False, "tokens", retry, requests, tokens)
    return Decision(True, "", 0.0, requests, tokens)


class MemoryBudget:
    """Fixed windows counted in this process (thread-safe)."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int, int]] = {}  # caller -> (window, req, tok)

    def _current(self, caller: str) -> tuple[int, int, int, float]:
        now = self.clock()
        index = int(now // self.limits.window)
        window, req, tok = self._windows.get(caller, (index, 0, 0))
        if window != index:
            req, tok = 0, 0
        retry = (index + 1) * self.limits.window - now
        return index, req, tok, retry

    def admit(self, caller: str, tokens: int = 0) -> Decision:
        with self._lock:
            index, req, tok, retry = self._current(caller)
            fits = self.limits.tokens is None or tok + tokens <= self.limits.tokens
            decision = _decide(self.limits, req + 1, tok + tokens, retry, fits)
            if decision.allowed:
                self._windows[caller] = (index, req + 1, tok + tokens)
            return decision

    def charge(self, caller: str, tokens: int) -> None:
        with self._lock:
            index, req, tok, _ = self._current(caller)
            self._windows[caller] = (index, req, tok + tokens)


class RedisBudget:
    """Fixed windows counted in Redis, shared by every process that uses the same
    ``prefix``; needs the ``redis`` package."""

    def __init__(
        self,
        limits: Limits,
        url: str,
        *,
        prefix: str = "opsloop:budget",
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits
        self.prefix = prefix
        self.clock = clock
        if client is None:
            try:
                import redis
            except ImportError:
                raise OpsloopError(
                    "a Redis budget needs the redis package: pip install redis"
                ) from None
            client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.client = client

    def _keys(self, caller: str) -> tuple[str, str, float, int]:
        now = self.clock()
        index = int(now // self.limits.window)
        base = f"{self.prefix}:{caller}:{index}"
        return f"{base}:req", f"{base}:tok", (index + 1) * self.limits.window - now, index

    def admit(self, caller: str, tokens: int = 0) -> Decision:
        req_key, tok_key, retry, _ = self._keys(caller)
        ttl = max(1, math.ceil(self.limits.window) + 1)
        pipe = self.client.pipeline()
        pipe.incr(req_key)
        pipe.expire(req_key, ttl)
        pipe.incrby(tok_key, tokens)
        pipe.expire(tok_key, ttl)
        requests, _, used, _ = pipe.execute()
        fits = self.limits.tokens is None or int(used) <= self.limits.tokens
        decision = _decide(self.limits, int(requests), int(used), retry, fits)
        if not decision.allowed:  # a refused request spends nothing
            undo = self.client.pipeline()
            undo.decr(req_key)
            undo.decrby(tok_key, tokens)
            undo.execute()
        return decision

    def charge(self, caller: str, tokens: int) -> None:
        _, tok_key, _, _ = self._keys(caller)
        pipe = self.client.pipeline()
        pipe.incrby(tok_key, tokens)
        pipe.expire(tok_key, max(1, math.ceil(self.limits.window) + 1))
        pipe.execute()

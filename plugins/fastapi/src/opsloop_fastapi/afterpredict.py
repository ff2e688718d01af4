"""The after-predict hooks, called off the response path: per batch, and per request.

A request appends its entry (:mod:`~opsloop_fastapi.entries`) to a bounded deque: no lock,
no wake-up. A daemon thread drains it every ``interval`` seconds, builds columnar
:class:`~opsloop.interfaces.PredictionBatch` es once, calls every ``after_predict_batch``
hook with each, calls every ``after_predict`` hook once per request (in request order),
and hands the batches on to the prediction log, which writes them without converting
again.

A full deque skips the hooks for that request (counted; the log still gets it); a hook
that raises is logged and counted. Neither ever affects a response.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from opsloop_fastapi.entries import (
    CONTEXT,
    HEADERS,
    LATENCY_MS,
    MODEL,
    REQUEST_ID,
    ROWS,
    VERSION,
    RefTable,
    build_batches,
    entry_outputs,
)
from opsloop_fastapi.ticker import Ticker

if TYPE_CHECKING:
    from opsloop.records import ModelVersionRef
    from opsloop_fastapi.metrics import ServerMetrics
    from opsloop_fastapi.predlog import PredictionLog

logger = logging.getLogger("opsloop_fastapi.afterpredict")

#: Requests per hook round: bounds how long the thread holds the interpreter at a time.
ROUND = 2_000


class AfterPredict:
    """Calls ``after_predict_batch`` and ``after_predict`` hooks on a background thread."""

    def __init__(
        self,
        hook: Any,
        metrics: ServerMetrics,
        log: PredictionLog | None = None,
        *,
        size: int = 100_000,
        interval: float = 0.05,
    ) -> None:
        self.hook = hook
        self.metrics = metrics
        self.log = log
        self.size = size
        self.interval = interval
        self.called = 0  # requests whose hooks ran
        self.dropped = 0  # requests whose hooks were skipped (queue full)
        self.refs = log.refs if log is not None else RefTable()
        self.per_request = has_impls(hook, "after_predict")
        self.batched = has_impls(hook, "after_predict_batch")
        self._deque: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._ticker = Ticker("opsloop-after-predict", interval, self.drain)

    @property
    def active(self) -> bool:
        """True when a plugin implements either hook (else requests go straight to the log)."""
        return self.per_request or self.batched

    def submit(self, entry: tuple[Any, ...], ref: ModelVersionRef) -> None:
        """Queue one request's entry without blocking (from a model thread)."""
        self.refs.add(ref)
        if len(self._deque) >= self.size:
            self.dropped += 1
            self.metrics.child(self.metrics.hook_dropped, "after_predict").inc()
            if self.log is not None:
                self.log.submit(entry, entry[ROWS])  # logged even when the hooks fall behind
            return
        self._deque.append(entry)

    def depth(self) -> int:
        return len(self._deque)

    def start(self) -> None:
        self._ticker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._ticker.stop(timeout)
        self.drain()

    def drain(self, timeout: float = 10.0) -> bool:
        """Call the hooks for everything queued so far; False when that took too long."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            return False
        try:
            calls = direct_calls(self.hook, "after_predict") if self.per_request else []
            pop = self._deque.popleft
            while self._deque:
                entries = [pop() for _ in range(min(len(self._deque), ROUND))]
                if self.per_request:
                    self._per_request(entries, calls)
                handed: list[Any] = entries
                if self.batched:
                    batches, failed = build_batches(entries, self.refs)
                    self.call_batch_hooks(batches)
                    handed = [*batches, *failed]  # the log counts what it cannot write
                self.called += len(entries)
                if self.log is not None:
                    self.log.submit_many(handed)
                if time.monotonic() > deadline:
                    return False
                if self._deque:
                    time.sleep(0)  # let the event loop in between rounds
            return True
        finally:
            self._lock.release()

    def call_batch_hooks(self, batches: list[Any]) -> None:
        """Call every ``after_predict_batch`` hook with each batch; errors are counted."""
        call = self.hook.after_predict_batch
        for batch in batches:
            try:
                call(batch=batch)
            except Exception:
                logger.exception(
                    "after_predict_batch hook raised (%d rows of %s v%s)",
                    len(batch),
                    batch.model.name,
                    batch.model.version,
                )
                self.metrics.child(self.metrics.hook_errors, "after_predict_batch").inc()

    def _per_request(self, entries: list[tuple[Any, ...]], calls: list[Any] | None) -> None:
        from opsloop_fastapi.scoring import LazyContext

        pluggy_call = self.hook.after_predict
        refs = self.refs
        for entry in entries:
            ctx = entry[CONTEXT]
            if ctx is None:
                ctx = LazyContext(
                    entry[REQUEST_ID],
                    refs.get(entry[MODEL], entry[VERSION]),
                    list(entry[HEADERS] or ()),
                    entry=entry,
                )
            ctx.outputs = entry_outputs(entry)
            ctx.latency_ms = entry[LATENCY_MS]
            if calls is None:
                self._guarded(pluggy_call, ctx, True)
            else:
                for function, wants_context in calls:
                    self._guarded(function, ctx, wants_context, direct=True)

    def _guarded(
        self, function: Any, ctx: Any, wants_context: bool, *, direct: bool = False
    ) -> None:
        try:
            if direct:
                function(ctx) if wants_context else function()
            else:
                function(context=ctx)
        except Exception:
            logger.exception("after_predict hook raised (request_id %s)", ctx.request_id)
            self.metrics.child(self.metrics.hook_errors, "after_predict").inc()


def has_impls(hook: Any, name: str) -> bool:
    """True when some plugin implements hook ``name``."""
    caller = getattr(hook, name, None)
    try:
        return bool(caller.get_hookimpls()) if caller is not None else False
    except Exception:  # noqa: BLE001 - unknown hook objects: call them to be safe
        return True


def direct_calls(hook: Any, name: str) -> list[tuple[Any, bool]] | None:
    """The implementations of a plain hook, in pluggy's call order, to call one by one.

    None (call through pluggy) when any is a wrapper, when a hook-call monitor (tracing)
    is installed, or when pluggy's internals are not what this was written against. Each
    implementation is called even when another raised (pluggy would stop at the first).
    """
    try:
        from pluggy._execution import _multicall
    except ImportError:
        return None
    caller = getattr(hook, name, None)
    manager = getattr(getattr(caller, "_hookexec", None), "__self__", None)
    if caller is None or getattr(manager, "_inner_hookexec", None) is not _multicall:
        return None
    calls: list[tuple[Any, bool]] = []
    for impl in reversed(caller.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper or impl.kwargnames:
            return None
        if impl.argnames not in ((), ("context",)):
            return None
        calls.append((impl.function, bool(impl.argnames)))
    return calls

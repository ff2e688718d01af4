"""The after-predict hooks, called off the response path: per batch, and per request.

A request appends its entry (:mod:`~opsloop_fastapi.entries`) to a bounded deque: no lock,
no wake-up. A daemon thread drains it every ``interval`` seconds, builds columnar
:class:`~opsloop.interfaces.PredictionBatch` es once, calls every ``after_predict_batch``
hook with each, calls every ``after_predict`` hook once per request (in request order),
and hands the batches on to the prediction log, which writes them without converting
again.

A full deque skips the hooks for that request (counted; the log still gets it). Each
plugin's implementation is called on its own (:mod:`~opsloop_fastapi.hookcalls`): one that
raises is logged and counted, and the others still run, with hook tracing on or off.
Neither ever affects a response.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from opsloop_fastapi.context import LazyContext
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
from opsloop_fastapi.hookcalls import OneByOne, has_impls
from opsloop_fastapi.ticker import Ticker

if TYPE_CHECKING:
    from opsloop.plugins import PluginManager
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
        plugins: PluginManager,
        metrics: ServerMetrics,
        log: PredictionLog | None = None,
        *,
        size: int = 100_000,
        interval: float = 0.05,
    ) -> None:
        self.metrics = metrics
        self.log = log
        self.size = size
        self.interval = interval
        self.called = 0  # requests whose hooks ran
        self.dropped = 0  # requests whose hooks were skipped (queue full)
        self.refs = log.refs if log is not None else RefTable()
        self.per_request = has_impls(plugins.hook, "after_predict")
        self.batched = has_impls(plugins.hook, "after_predict_batch")
        self._after_predict = OneByOne(plugins, "after_predict")
        self._after_predict_batch = OneByOne(plugins, "after_predict_batch")
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
            pop = self._deque.popleft
            while self._deque:
                entries = [pop() for _ in range(min(len(self._deque), ROUND))]
                if self.per_request:
                    self._per_request(entries)
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
        calls = self._after_predict_batch.calls()
        for batch in batches:
            for function, takes_arg, plugin in calls:
                try:
                    function(batch) if takes_arg else function()
                except Exception:  # noqa: BLE001 - logged and counted by _hook_failed
                    model = batch.model
                    where = f"{len(batch)} rows of {model.name} v{model.version}"
                    self._hook_failed("after_predict_batch", plugin, where)

    def _per_request(self, entries: list[tuple[Any, ...]]) -> None:
        calls = self._after_predict.calls()
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
            for function, takes_arg, plugin in calls:
                try:
                    function(ctx) if takes_arg else function()
                except Exception:  # noqa: BLE001 - logged and counted by _hook_failed
                    self._hook_failed("after_predict", plugin, f"request_id {ctx.request_id}")

    def _hook_failed(self, hook: str, plugin: str, where: str) -> None:
        """Log the error being handled, with its traceback, and count it (never re-raised)."""
        logger.exception("%s hook of plugin %s raised (%s)", hook, plugin, where)
        self.metrics.child(self.metrics.hook_errors, hook).inc()

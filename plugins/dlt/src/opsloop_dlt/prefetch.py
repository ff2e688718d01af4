"""Compute the next items of an iterator in a worker thread while the caller uses this one.

A landing-file load reads a batch, checks it against the contract and hands it to dlt,
which writes it to a Parquet file. Reading (pyarrow), checking (DuckDB, pyarrow compute)
and writing (pyarrow) all release the GIL, so a worker that reads and checks batch n+1
while dlt writes batch n overlaps them on a second core. At most ``depth`` finished items
wait in the queue, plus the one the worker is making: memory stays bounded.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1  # how often a blocked worker looks whether the consumer went away


class _Failed:
    """An exception raised in the worker, to raise again in the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """The items of ``items`` in order, each made in a worker thread ahead of its use.

    The worker starts at once, so the first items are ready by the time they are asked
    for. An exception raised while making an item is raised to the consumer, in order, as
    it was. :meth:`close` (or leaving the ``with`` block) stops the worker after the item
    it is making, closes the source and waits for it: nothing keeps running on the source.
    """

    def __init__(self, items: Iterable[T], depth: int = 1) -> None:
        self._source = iter(items)
        self._box: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._worker = threading.Thread(target=self._work, name="opsloop-prefetch", daemon=True)
        self._worker.start()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        value = self._box.get()
        if value is _DONE:
            self._finished = True
            raise StopIteration
        if isinstance(value, _Failed):
            self._finished = True
            raise value.error
        return value  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the worker and wait for it (idempotent)."""
        self._finished = True
        self._stop.set()
        while self._worker.is_alive():  # unblock a worker waiting to put, then wait for it
            with contextlib.suppress(queue.Empty):
                self._box.get_nowait()
            self._worker.join(timeout=_POLL_S)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._box.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(_Failed(exc))
            return
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:  # a generator's files and connections, closed here
                close()
        self._put(_DONE)

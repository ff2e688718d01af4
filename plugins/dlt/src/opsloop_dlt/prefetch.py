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
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1  # how often a blocked worker looks whether the consumer went away


class _Failed:
    """An exception raised in the worker, to raise again in the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items`` in order, each made in a worker thread ahead of its use.

    An exception raised while making an item is raised here, in order, as it was. Closing
    this generator early (dlt does when a step fails) stops the worker after the item it is
    making and waits for it, so nothing keeps running on the source afterwards.
    """
    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                box.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    source = iter(items)

    def work() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failed(exc))
            return
        finally:
            close = getattr(source, "close", None)
            if close is not None:  # a generator's files and connections, closed here
                close()
        put(_DONE)

    worker = threading.Thread(target=work, name="opsloop-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            value = box.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting to put, then wait for it
            with contextlib.suppress(queue.Empty):
                box.get_nowait()
            worker.join(timeout=_POLL_S)

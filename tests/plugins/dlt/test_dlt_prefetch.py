"""The worker that reads and checks the next batch while dlt writes the current one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opsloop_dlt.prefetch import prefetched


def test_items_come_in_order_and_made_in_another_thread() -> None:
    made_in: set[str] = set()

    def items() -> Iterator[int]:
        for n in range(50):
            made_in.add(threading.current_thread().name)
            yield n

    assert list(prefetched(items())) == list(range(50))
    assert made_in == {"opsloop-prefetch"}


def test_an_error_comes_after_the_items_made_before_it_and_is_the_same_exception() -> None:
    boom = ValueError("file 3 is broken")

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise boom

    got: list[int] = []
    with pytest.raises(ValueError) as caught:
        for item in prefetched(items()):
            got.append(item)
    assert got == [1, 2] and caught.value is boom


def test_the_worker_runs_at_most_depth_plus_one_items_ahead() -> None:
    made: list[int] = []
    gate = threading.Event()

    def items() -> Iterator[int]:
        for n in range(100):
            made.append(n)
            yield n

    stream = prefetched(items(), depth=2)
    assert next(stream) == 0
    gate.wait(0.3)  # give the worker every chance to run ahead
    # 0 was taken, 2 wait in the queue and the worker blocks holding the next one
    assert len(made) <= 1 + 2 + 1
    assert list(stream) == list(range(1, 100))


def test_closing_early_stops_the_worker_and_closes_the_source() -> None:
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    before = {t.ident for t in threading.enumerate()}
    stream = prefetched(items())
    assert next(stream) == 0
    stream.close()
    workers = [t for t in threading.enumerate() if t.name == "opsloop-prefetch"]
    assert not [t for t in workers if t.ident not in before]
    assert closed.wait(2)

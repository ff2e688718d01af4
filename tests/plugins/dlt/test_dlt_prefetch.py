"""The worker that reads and checks the next batch while dlt writes the current one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opsloop_dlt.prefetch import Prefetch


def test_items_come_in_order_and_made_in_another_thread() -> None:
    made_in: set[str] = set()

    def items() -> Iterator[int]:
        for n in range(50):
            made_in.add(threading.current_thread().name)
            yield n

    with Prefetch(items()) as ahead:
        assert list(ahead) == list(range(50))
        assert list(ahead) == []  # exhausted stays exhausted
    assert made_in == {"opsloop-prefetch"}


def test_an_error_comes_after_the_items_made_before_it_and_is_the_same_exception() -> None:
    boom = ValueError("file 3 is broken")

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise boom

    got: list[int] = []
    with Prefetch(items()) as ahead, pytest.raises(ValueError) as caught:
        for item in ahead:
            got.append(item)
    assert got == [1, 2] and caught.value is boom


def test_the_worker_starts_at_once_and_runs_at_most_depth_plus_one_items_ahead() -> None:
    made: list[int] = []
    third = threading.Event()

    def items() -> Iterator[int]:
        for n in range(100):
            made.append(n)
            if n == 2:
                third.set()
            yield n

    with Prefetch(items(), depth=2) as ahead:
        # nothing asked yet, and the worker already made items
        assert third.wait(5)
        threading.Event().wait(0.3)  # give it every chance to run further ahead
        # 2 wait in the queue and the worker blocks holding the next one
        assert len(made) <= 2 + 1
        assert list(ahead) == list(range(100))


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

    ahead = Prefetch(items())
    assert next(ahead) == 0
    ahead.close()
    assert closed.is_set()
    assert not [t for t in threading.enumerate() if t.name == "opsloop-prefetch"]
    with pytest.raises(StopIteration):
        next(ahead)


def test_closing_before_anything_was_asked_stops_the_worker() -> None:
    def items() -> Iterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    Prefetch(items()).close()
    assert not [t for t in threading.enumerate() if t.name == "opsloop-prefetch"]

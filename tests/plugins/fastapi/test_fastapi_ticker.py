"""The background ticker behind the alias poll and the after-predict hooks."""

from __future__ import annotations

import threading
import time

from opsloop_fastapi.ticker import Ticker


def test_a_failing_tick_does_not_stop_the_ticking() -> None:
    calls: list[float] = []
    third = threading.Event()

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) >= 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("one bad round")

    ticker = Ticker("test-ticker", 0.01, tick)
    ticker.start()
    ticker.start()  # idempotent: still one thread
    assert third.wait(5)
    assert [t.name for t in threading.enumerate()].count("test-ticker") == 1
    ticker.stop()
    assert not ticker.running
    stopped_at = len(calls)
    time.sleep(0.05)
    assert len(calls) == stopped_at

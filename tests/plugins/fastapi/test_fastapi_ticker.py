"""The background ticker behind the alias poll and the after-predict hooks."""

from __future__ import annotations

import threading
import time
from typing import Any

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


def native_names() -> set[str]:
    """The OS names of this process's threads (what top -H and perf show)."""
    from pathlib import Path

    names = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            names.add((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return names


def test_server_threads_carry_their_names_for_top_and_perf(project_factory: Any) -> None:
    from fastapi.testclient import TestClient
    from fastapi_testkit import MODEL, RecorderPlugin, app_for, one_row

    project = project_factory(("recorder", RecorderPlugin()))
    with TestClient(app_for(project, shadow=False)) as client:
        response = client.post(f"/v1/models/{MODEL}/predict", json={"records": [one_row()]})
        assert response.status_code == 200
        names = native_names()
    # 15 bytes is the kernel's limit: opsloop-predlog-<model> becomes opsloop-predlog
    assert {"opsloop-model_0", "opsloop-predlog", "opsloop-after-p"} <= names, names
    ticker = Ticker("opsloop-test-ticker-long-name", 0.01, lambda: None)
    ticker.start()
    time.sleep(0.05)
    assert "opsloop-test-ti" in native_names()
    ticker.stop()

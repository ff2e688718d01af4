"""CPU of the after-predict thread per request, against calling each hook through pluggy.

The FastAPI server's after-predict thread calls ``after_predict`` once per request. It
calls the implementations' functions directly (opsloop_fastapi.hookcalls); the anchor is
the ordinary pluggy call (``project.hook.after_predict(context=...)``) per request, which
is what hook tracing uses. Both drain the same 20,000 queued one-row entries of a
30-feature model, interleaved round by round; thread CPU time, so other load on a shared
machine counts less. Run: ``.venv/bin/python tests/benchmarks/bench_after_predict.py``
(``ROUNDS``, ``N``).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from opsloop_fastapi.afterpredict import AfterPredict
from opsloop_fastapi.entries import make_entry
from opsloop_fastapi.hookcalls import ImplCall
from opsloop_fastapi.metrics import ServerMetrics

from opsloop import hookimpl
from opsloop.records import ModelVersionRef
from opsloop.testing import make_project

N = int(os.environ.get("N", "20000"))
ROUNDS = int(os.environ.get("ROUNDS", "7"))
REF = ModelVersionRef(name="bc", version="1", uri="models:/bc/1", store="memory")
COLUMNS = tuple(f"f{i}" for i in range(30))


class PerRequestMonitor:
    """The benchmark monitor as a per-request hook: counts predictions per class."""

    def __init__(self) -> None:
        self.classes: dict[Any, int] = {}

    @hookimpl
    def after_predict(self, context: Any) -> None:
        out = context.outputs[0]
        self.classes[out] = self.classes.get(out, 0) + 1


class BatchMonitor:
    """The same monitor as an ``after_predict_batch`` hook."""

    def __init__(self) -> None:
        self.rows = 0

    @hookimpl
    def after_predict_batch(self, batch: Any) -> None:
        self.rows += len(batch)


class ThroughPluggy:
    """Stands in for OneByOne: one ordinary pluggy call per request (the anchor)."""

    def __init__(self, hook: Any) -> None:
        relay = hook.after_predict
        self._calls = [ImplCall(lambda ctx: relay(context=ctx), True, "pluggy")]

    def calls(self) -> list[ImplCall]:
        return self._calls


def drain_us(project: Any, *, through_pluggy: bool = False) -> float:
    """µs of CPU per request for the after-predict thread to drain N queued requests."""
    after = AfterPredict(project.plugins, ServerMetrics(), None, size=N + 1)
    if through_pluggy:
        after._after_predict = ThroughPluggy(project.hook)  # type: ignore[assignment]
    row = np.random.default_rng(0).random((1, len(COLUMNS)))
    for i in range(N):
        after.submit(
            make_entry(1.7e9 + i, f"r{i}", "bc", "1", "champion", 0.1, row, COLUMNS, None, [i % 2]),
            REF,
        )
    started = time.thread_time()
    assert after.drain(timeout=600)
    return (time.thread_time() - started) / N * 1e6


def main() -> dict[str, Any]:
    import opsloop_fastapi.scoring  # noqa: F401 - imported in a server: keep it out of the timing

    root = Path(tempfile.mkdtemp(prefix="bench-after-predict-"))
    per_request = make_project(root / "per-request", PerRequestMonitor())
    batch = make_project(root / "batch", BatchMonitor())
    runs: dict[str, list[float]] = {"direct": [], "pluggy": [], "batch": []}
    try:
        for i in range(ROUNDS):
            order = ["direct", "pluggy", "batch"]
            for name in order if i % 2 == 0 else order[::-1]:
                if name == "batch":
                    runs[name].append(drain_us(batch))
                else:
                    runs[name].append(drain_us(per_request, through_pluggy=name == "pluggy"))
    finally:
        per_request.close()
        batch.close()
    medians = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    result = {
        "requests_per_round": N,
        "rounds": ROUNDS,
        "us_per_request_median": medians,
        "us_per_request_runs": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "direct_over_pluggy": round(medians["direct"] / medians["pluggy"], 2),
    }
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))

"""Notification delivery: what the outbox costs beside a bare HTTP POST (issue 12).

Two measurements against a local webhook receiver (loopback, answers 200 at once), in one
process, side by side with their anchor:

1. Live delivery: ``project.emit(signal)`` of a critical drift signal that opens a new
   incident, with one webhook notifier configured (queue, sign, POST, mark delivered,
   audit), beside the same emit with no notifier, and beside a bare ``urllib`` POST of a
   body of the same size. The difference of the two emits is what notifying adds to
   opening an incident.
2. Catch-up after an outage: N incidents opened while the webhook was down, then one
   ``drain`` once it is back, beside N bare POSTs.

The 0-lost / 0-duplicated target itself is a test (tests/core/test_notify_outbox.py), not
a timing. Run: ``.venv/bin/python tests/benchmarks/bench_notify.py`` (prints JSON).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

RUNS = int(os.environ.get("BENCH_RUNS", "200"))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "500"))
SECRET = "bench-secret-0123456789"


def _project(root: Path, url: str | None) -> Any:
    from opsloop.testing import make_project

    config = '[project]\nname = "bench"\n'
    if url:
        config += f'[respond.notify.hook]\ntype = "webhook"\nurl = "{url}"\nsecret_env = "S"\n'
    return make_project(root, config=config, environ={"S": SECRET})


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p95_ms": round(sorted(samples)[int(len(samples) * 0.95) - 1] * 1000, 3),
    }


def main() -> dict[str, Any]:
    from notify_receivers import HttpReceiver

    from opsloop import notify
    from opsloop.notify import signing
    from opsloop.records import Signal

    receiver = HttpReceiver("webhook", SECRET).start()
    tmp = Path(tempfile.mkdtemp(prefix="opsloop-bench-notify-"))
    with_hook = _project(tmp / "hook", receiver.url)
    without = _project(tmp / "none", None)

    def emit(project: Any, i: int) -> float:
        signal = Signal(source="bench", type="drift", severity="critical", subject=f"m{i}")
        start = time.perf_counter()
        project.emit(signal)
        return time.perf_counter() - start

    def bare_post() -> float:
        """The warm-up's webhook body POSTed again, signed, with nothing around it."""
        stamp = int(time.time())
        headers = {
            **{k: v for k, v in first.headers.items() if k.startswith("X-Opsloop-")},
            "Content-Type": "application/json",
            "User-Agent": "opsloop/bench",
            signing.TIMESTAMP_HEADER: str(stamp),
            signing.SIGNATURE_HEADER: signing.sign(SECRET, stamp, body),
        }
        request = urllib.request.Request(receiver.url, body, headers)
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        return time.perf_counter() - start

    emit(with_hook, -1), emit(without, -1)  # warm-up
    first = receiver.received[0]
    body = first.body
    hook_times, none_times, post_times = [], [], []
    for i in range(RUNS):  # interleaved, so drift in the machine's load hits all three
        hook_times.append(emit(with_hook, i))
        none_times.append(emit(without, i))
        post_times.append(bare_post())
    sent = len(receiver.received)
    assert sent == 2 * RUNS + 1, f"the receiver got {sent} requests, expected {2 * RUNS + 1}"

    # Catch-up: BACKLOG incidents opened while the webhook is down, then one drain.
    receiver.status = 503
    backlog = _project(tmp / "backlog", receiver.url)
    for i in range(BACKLOG):
        backlog.emit(Signal(source="bench", type="drift", severity="critical", subject=f"b{i}"))
    receiver.status = 0
    receiver.received.clear()
    start = time.perf_counter()
    result = notify.drain(backlog, force=True, quiet=True)
    drain_s = time.perf_counter() - start
    assert len(result.delivered) == BACKLOG == len(receiver.received)
    receiver.problems.clear()  # the bare posts below are not webhook deliveries
    start = time.perf_counter()
    for _ in range(BACKLOG):
        bare_post()
    posts_s = time.perf_counter() - start
    receiver.stop()
    live_overhead = statistics.median(hook_times) - statistics.median(none_times)
    return {
        "python": sys.version.split()[0],
        "runs": RUNS,
        "emit_with_webhook": _ms(hook_times),
        "emit_without_notifier": _ms(none_times),
        "bare_post": _ms(post_times),
        "notify_overhead_ms": round(live_overhead * 1000, 3),
        "overhead_vs_bare_post": round(live_overhead / statistics.median(post_times), 2),
        "backlog": BACKLOG,
        "drain_s": round(drain_s, 3),
        "drain_per_notification_ms": round(drain_s / BACKLOG * 1000, 3),
        "bare_posts_s": round(posts_s, 3),
        "drain_vs_bare_posts": round(drain_s / posts_s, 2),
        "wire_problems": receiver.problems,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))

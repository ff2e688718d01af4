"""From a challenger failing its canary to the automatic rollback, under load.

Target (issue 12): <= 30 s from a challenger failing its canary to the automatic rollback,
with 0 failed requests seen by clients.

Set-up: a project on a real MLflow store (SQLite + local artifacts), the breast-cancer
model @champion served by the fastapi plugin's real uvicorn server on 127.0.0.1 (canary
share 0.25, alias poll every second, prediction log rotated every second), a load
generator of 4 threads sending one-row requests as fast as the server answers, and a
``[respond.retrain.bc]`` policy. Each round emits a drift signal; the policy retrains
with a model that has a serving bug (:class:`retrain_kit.BatchScaler`: it scales each
batch by its own statistics, fine on the 169-row holdout, NaN on a one-row request), so
it passes the promotion gate, becomes the challenger and fails on every request the
canary sends it. Measured per round, from the RetrainRun record, the prediction log and a
watcher of the server's /version:

* challenger alias set -> first failed challenger request (the server noticed the alias);
* first failed request -> rollback done (the target: the challenger alias removed);
* rollback -> the server no longer serves a challenger (its next alias poll);
* requests the clients sent, and how many did not get a 200.

The anchor is the same first round with ``challenger_fallback = false`` (what the server
did before this issue): clients then get the challenger's errors, and the prediction log
holds no failed row for the canary to judge, so the run ends only when
``canary_duration`` (here 20 s) runs out, with an inconclusive canary.

``.venv/bin/python tests/benchmarks/bench_retrain_loop.py [--write-doc]`` (``BENCH_ROUNDS``,
default 3); about a minute and a half.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TARGET_S = 30.0
SERVING = """
[plugin.fastapi]
canary_share = 0.25
poll_seconds = 1
log_flush_seconds = 0.2
log_rotate_seconds = 1
challenger_fallback = {fallback}
"""


def _policy(duration: str) -> str:
    import retrain_kit as rk

    return rk.policy(
        cooldown='"1s"',
        canary_duration=f'"{duration}"',
        canary_min_requests=100,
        poll_seconds=1,
        max_latency_ratio=20,
    )


class VersionWatcher:
    """Polls the server's /version every 50 ms: when did it serve a challenger, and stop."""

    def __init__(self, url: str) -> None:
        self.url = url + "/version"
        self.changes: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> VersionWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import httpx

        last: Any = ()
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    body = client.get(self.url).json()
                except httpx.HTTPError:
                    continue
                challenger = body.get("challenger")
                version = challenger.get("version") if isinstance(challenger, dict) else None
                if version != last:
                    self.changes.append((time.time(), version))
                    last = version
                self._stop.wait(0.05)

    def served_until(self, version: str) -> float | None:
        """When the server stopped serving ``version`` as its challenger."""
        seen = False
        for at, current in self.changes:
            if current == version:
                seen = True
            elif seen:
                return at
        return None


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _step(run: Any, name: str) -> dict[str, Any]:
    return next(s for s in run.steps if s["step"] == name)


def _round(project: Any, trainer: Any, url: str, index: int) -> dict[str, Any]:
    import retrain_kit as rk

    from opsloop.records import Signal
    from opsloop.retrain import list_runs

    trainer.broken = True
    time.sleep(1.1)  # the policy's cooldown
    with rk.Load(url, threads=4, pause=0) as load, VersionWatcher(url) as watcher:
        time.sleep(1.0)  # traffic before the signal
        started = time.time()
        project.emit(Signal(source="bench", type="drift", subject=rk.MODEL, summary=f"r{index}"))
        run = list_runs(project, rk.MODEL)[-1]
        time.sleep(1.5)  # the server's next alias poll retires the challenger
    challenger = _step(run, "challenger")
    alias_set = _epoch(challenger["started_at"]) + challenger["seconds"]
    log = project.hook.read_predictions(
        project=project, model=rk.MODEL, since=datetime.fromtimestamp(alias_set, UTC).isoformat()
    )
    failed_rows = log[log["role"] == "fallback"]
    first_fail = (
        float(failed_rows["logged_at"].min().timestamp()) if len(failed_rows) else float("nan")
    )
    out: dict[str, Any] = {
        "round": index,
        "verdict": run.verdict,
        "version": run.version,
        "signal_to_alias_s": round(alias_set - started, 3),
        "requests": load.total,
        "failed_requests": load.failed,
        "challenger_failures_answered_by_champion": int(failed_rows["request_id"].nunique()),
        "canary": run.canary.get("reason", ""),
    }
    if run.verdict == "rolled_back":
        rollback = _step(run, "rollback")
        done = _epoch(rollback["started_at"]) + rollback["seconds"]
        off = watcher.served_until(str(run.version))
        out.update(
            alias_to_rollback_s=round(done - alias_set, 3),
            rollback_to_not_served_s=round(off - done, 3) if off else None,
        )
        if len(failed_rows):
            out.update(
                alias_to_first_failure_s=round(first_fail - alias_set, 3),
                failure_to_rollback_s=round(done - first_fail, 3),
            )
    return out


def _scenario(fallback: bool, rounds: int, duration: str) -> list[dict[str, Any]]:
    import retrain_kit as rk

    from opsloop import registry

    root = Path(tempfile.mkdtemp(prefix="opsloop-bench-retrain-")) / "p"
    serving = SERVING.format(fallback="true" if fallback else "false")
    project, trainer = rk.open_project(root, _policy(duration), serving_config=serving)
    ref = registry.get_store(project).resolve(rk.MODEL, "champion")
    handle = project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=0)
    try:
        return [_round(project, trainer, handle.url, i + 1) for i in range(rounds)]
    finally:
        handle.stop()
        project.close()


def main() -> dict[str, Any]:
    import logging

    from opsloop_mlflow._vendor import import_mlflow

    import_mlflow()
    logging.getLogger("opsloop_fastapi").setLevel(logging.ERROR)  # one warning per fallback
    with_fallback = _scenario(True, ROUNDS, "5m")
    anchor = _scenario(False, 1, "20s")
    times = [r["failure_to_rollback_s"] for r in with_fallback if "failure_to_rollback_s" in r]
    worst = max(times) if times else float("nan")
    failed = sum(r["failed_requests"] for r in with_fallback)
    return {
        "benchmark": "retrain_loop",
        "python": platform.python_version(),
        "rounds": ROUNDS,
        "target_s": TARGET_S,
        "failure_to_rollback_median_s": round(statistics.median(times), 3) if times else None,
        "failure_to_rollback_max_s": round(worst, 3),
        "ratio_to_target": round(worst / TARGET_S, 3),
        "failed_requests": failed,
        "meets_target": bool(
            len(times) == ROUNDS
            and worst <= TARGET_S
            and failed == 0
            and all(r["verdict"] == "rolled_back" for r in with_fallback)
        ),
        "with_fallback": with_fallback,
        "anchor_without_fallback": anchor,
    }


def doc_lines(result: dict[str, Any]) -> list[str]:
    verdict = "met" if result["meets_target"] else "MISSED"
    (anchor,) = result["anchor_without_fallback"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"Python {result['python']}, {result['rounds']} rounds, 4 client threads.",
        "",
        "| round | alias set -> first failure s | first failure -> rollback s | "
        "alias set -> rollback s | rollback -> not served s | requests | failed | "
        "answered by the champion | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["with_fallback"]:
        lines.append(
            f"| {r['round']} | {r.get('alias_to_first_failure_s')} | "
            f"{r.get('failure_to_rollback_s')} | {r.get('alias_to_rollback_s')} | "
            f"{r.get('rollback_to_not_served_s')} | "
            f"{r['requests']} | {r['failed_requests']} | "
            f"{r['challenger_failures_answered_by_champion']} | {r['verdict']} |"
        )
    lines += [
        f"| anchor: fallback off | - | - | {anchor.get('alias_to_rollback_s', '-')} | "
        f"{anchor.get('rollback_to_not_served_s', '-')} | {anchor['requests']} | "
        f"{anchor['failed_requests']} | {anchor['challenger_failures_answered_by_champion']} | "
        f"{anchor['verdict']} |",
        "",
        f"Worst first failure -> rollback: {result['failure_to_rollback_max_s']} s, "
        f"{result['ratio_to_target']}x the 30 s target; {result['failed_requests']} failed "
        f"client requests (target 0): {verdict}.",
        "",
        "```json",
        json.dumps(result, indent=1),
        "```",
    ]
    return lines


DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
START, END = "<!-- retrain-results:start -->", "<!-- retrain-results:end -->"


def write_doc(lines: list[str], start: str = START, end: str = END) -> None:
    text = DOC.read_text(encoding="utf-8")
    head, found, rest = text.partition(start)
    if not found:
        raise SystemExit(f"{DOC} lacks the marker {start}")
    _, _, tail = rest.partition(end)
    DOC.write_text(head + "\n".join([start, *lines, end]) + tail, encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    outcome = main()
    print(json.dumps(outcome, indent=1))
    if "--write-doc" in sys.argv:
        write_doc(doc_lines(outcome))

"""CPU per request of `opsloop serve` in several configurations, side by side (a diagnostic).

Throughput on a shared machine moves by several percent from run to run; the server's own
CPU time per request (utime + stime from /proc, all threads) moves much less. This starts
one server per configuration, pins them to CPU 1 and wrk to CPU 0, and measures them in
turn, round after round. It is how the prediction log's cost was taken apart (see
docs/benchmarks.md, "About the ≤ 5% target"). Run:
``.venv/bin/python tests/benchmarks/profile_serving_cpu.py`` (``ROUNDS``, ``SECONDS``).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_serving as bench

TICK = os.sysconf("SC_CLK_TCK")
CONFIGS = {
    "log + monitor off": bench.OFF,
    "log only": {"OPSLOOP_DISABLE_PLUGINS": "benchmonitor,benchperrequest"},
    "log + batch monitor": bench.ON,
    "log + per-request monitor": bench.PER_REQUEST,
}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of every thread of process ``pid``."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def main() -> None:
    rounds = int(os.environ.get("ROUNDS", "4"))
    seconds = int(os.environ.get("SECONDS", "6"))
    workdir = Path(tempfile.mkdtemp(prefix="profile-serving-"))
    try:
        setup = bench.make_project(workdir / "project")
        servers = {name: bench.start_opsloop(setup, name, env) for name, env in CONFIGS.items()}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
        try:
            for _ in range(rounds):
                for name, server in servers.items():
                    # uvicorn runs inside the opsloop process (taskset execs it, same pid)
                    pid = server.proc.pid
                    before = cpu_seconds(pid)
                    run = bench.wrk(server.url + "/invocations", setup["invocations_body"],
                                    seconds)  # fmt: skip
                    used = cpu_seconds(pid) - before
                    results[name].append((run["rps"], used / run["requests"] * 1e6))
                    print(f"{name:28} {run['rps']:9,.0f} req/s "
                          f"{results[name][-1][1]:6.1f} µs CPU/request", flush=True)  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = statistics.median(us for _, us in results["log + monitor off"])
    for name, runs in results.items():
        us = statistics.median(u for _, u in runs)
        print(f"{name:28} median {us:6.1f} µs CPU/request ({us - base:+.1f} µs)")


if __name__ == "__main__":
    main()

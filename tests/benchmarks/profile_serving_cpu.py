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


def threads(pid: int) -> dict[str, tuple[str, float, int]]:
    """Per thread of process ``pid``: OS name, user + system CPU seconds, context switches.

    The server names its threads (opsloop-model_0, opsloop-after-p, opsloop-predlog, ...),
    so the CPU a request costs can be split by who spends it.
    """
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
            status = (task / "status").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        switches = sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_sw" in line)
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        out[tid] = ("event loop" if tid == str(pid) else name, cpu, switches)
    return out


def per_request(before: dict, after: dict, requests: int) -> dict[str, tuple[float, float]]:
    """µs of CPU and context switches per request, by thread name (model threads summed)."""
    split: dict[str, list[float]] = {}
    for tid, (name, cpu, switches) in after.items():
        _, cpu0, switches0 = before.get(tid, (name, 0.0, 0))
        key = "model threads" if name.startswith("opsloop-model") else name
        row = split.setdefault(key, [0.0, 0.0])
        row[0] += (cpu - cpu0) / requests * 1e6
        row[1] += (switches - switches0) / requests
    return {k: (v[0], v[1]) for k, v in split.items() if v[0] >= 0.05}


def main() -> None:
    rounds = int(os.environ.get("ROUNDS", "4"))
    seconds = int(os.environ.get("SECONDS", "6"))
    workdir = Path(tempfile.mkdtemp(prefix="profile-serving-"))
    results: dict[str, list[float]] = {name: [] for name in CONFIGS}
    try:
        setup = bench.make_project(workdir / "project")
        servers = {name: bench.start_opsloop(setup, name, env) for name, env in CONFIGS.items()}
        try:
            for i in range(rounds):
                order = list(servers.items())
                for name, server in order if i % 2 == 0 else order[::-1]:
                    # uvicorn runs inside the opsloop process (taskset execs it, same pid)
                    pid = server.proc.pid
                    before = threads(pid)
                    run = bench.wrk(server.url + "/invocations", setup["invocations_body"],
                                    seconds)  # fmt: skip
                    split = per_request(before, threads(pid), run["requests"])
                    total = sum(us for us, _ in split.values())
                    results[name].append(total)
                    detail = "  ".join(f"{k} {us:.1f}" for k, (us, _) in sorted(split.items()))
                    print(f"{name:26} {run['rps']:7,.0f} req/s {total:6.1f} µs CPU/request: "
                          f"{detail}", flush=True)  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = statistics.median(results["log + monitor off"])
    for name, runs in results.items():
        us = statistics.median(runs)
        print(f"{name:26} median {us:6.1f} µs CPU/request ({us - base:+.1f} µs), "
              f"lowest {min(runs):6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()

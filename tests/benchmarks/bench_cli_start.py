"""CLI start-up: `opsloop --help` and `opsloop plugins` beside `mlflow --help` and `dlt --help`.

Target (issue 2): each opsloop command <= 0.3 s wall. Every command runs RUNS times in
one process tree, interleaved, so they see the same machine load; we report the median
and the ratio to the anchors.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
BIN = Path(sys.executable).parent
COMMANDS = {
    "opsloop --help": [str(BIN / "opsloop"), "--help"],
    "opsloop plugins": [str(BIN / "opsloop"), "plugins"],
    "mlflow --help": [str(BIN / "mlflow"), "--help"],
    "dlt --help": [str(BIN / "dlt"), "--help"],
}
TARGET_S = 0.3


def measure() -> dict[str, dict[str, float]]:
    cwd = tempfile.mkdtemp(prefix="opsloop-bench-")
    env = {**os.environ, "COLUMNS": "120", "RUNTIME__DLTHUB_TELEMETRY": "false"}
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the page cache once
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
    for _ in range(RUNS):
        for name, cmd in COMMANDS.items():
            start = time.perf_counter()
            out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
            samples[name].append(time.perf_counter() - start)
            if out.returncode != 0:
                raise SystemExit(f"{name} failed: {out.stderr.decode()[-300:]}")
    shutil.rmtree(cwd, ignore_errors=True)
    return {
        name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
        for name, v in samples.items()
    }


def main() -> dict[str, object]:
    results = measure()
    ml = results["mlflow --help"]["median_s"]
    dl = results["dlt --help"]["median_s"]
    rows = []
    for name, r in results.items():
        rows.append({
            "command": name,
            **{k: round(v, 3) for k, v in r.items()},
            "vs_mlflow_help": round(r["median_s"] / ml, 2),
            "vs_dlt_help": round(r["median_s"] / dl, 2),
            "meets_target": (r["median_s"] <= TARGET_S) if name.startswith("opsloop") else None,
        })  # fmt: skip
    report = {"benchmark": "cli_start", "runs": RUNS, "target_s": TARGET_S, "rows": rows}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

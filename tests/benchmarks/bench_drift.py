"""A drift check of a 100,000 x 50 window against a stored profile, beside Evidently.

Targets (issue 11): the check is >= 100x faster than Evidently's DataDriftPreset on the same
data, its whole process peaks at <= 1/3 of Evidently's memory, and the profile of the
100,000 x 50 reference builds in <= 1 s.

The reference and the current window are 50 normal features (5 of them shifted by 0.25
standard deviations in the window), drawn from fixed seeds, so every process builds the
very same frames without a file format in the way. The parent profiles the reference once
and stores the profile in a project (as `opsloop monitor profile` does). Then, ROUNDS
times, each of these runs in its own fresh Python process and reports its timed section
and its peak RSS: the whole process (interpreter, pandas and data), read from VmHWM in
/proc/self/status. Not ``getrusage``'s ru_maxrss: Linux carries that over from the forking
parent across exec, so every child would start at the parent's peak.

* ``baseline``: builds the current window and does nothing else (the floor all share);
* ``opsloop check``: ``load_profile`` (SHA-256 checked) + the ``profile`` detector's check;
* ``opsloop profile``: builds the reference profile (``profile_frame``);
* ``psi-ks``: opsloop-evidently's light detector on both frames (for context);
* ``evidently``: ``Report([DataDriftPreset()]).run`` on both frames, no HTML.

``.venv/bin/python tests/benchmarks/bench_drift.py [--write-doc]`` (``BENCH_ROUNDS``,
default 2; Evidently takes about a minute a round).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
ROWS, FEATURES, SHIFTED, SHIFT = 100_000, 50, 5, 0.25
TARGET_SPEEDUP, TARGET_MEMORY, TARGET_PROFILE_S = 100.0, 1 / 3, 1.0
MODES = ("baseline", "opsloop-check", "opsloop-profile", "psi-ks", "evidently")

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("DO_NOT_TRACK", "1")
mode, folder = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)
from bench_data import current_frame, reference_frame
current = current_frame()
reference = reference_frame() if mode in ("opsloop-profile", "psi-ks", "evidently") else None
out = {"mode": mode}
if mode == "baseline":
    start = time.perf_counter()
elif mode == "opsloop-check":
    from opsloop.drift import ProfileDetector
    from opsloop.plugins import make_manager
    from opsloop.profile_store import load_profile
    from opsloop.project import Project
    project = Project.open(os.path.join(folder, "project"), plugins=make_manager(), environ={})
    start = time.perf_counter()
    profile = load_profile(project, "bench", "1")
    result = ProfileDetector().check(profile, current)
    out["drifted_features"] = result.drifted_features
elif mode == "opsloop-profile":
    from opsloop.profiles import profile_frame
    start = time.perf_counter()
    profile = profile_frame(reference)
    out["columns"] = len(profile.columns)
elif mode == "psi-ks":
    from opsloop_evidently.psi_ks import PsiKsDetector
    start = time.perf_counter()
    result = PsiKsDetector().detect(reference, current)
    out["drifted_features"] = [f.feature for f in result.features if f.drifted]
elif mode == "evidently":
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    columns = list(reference.columns)
    definition = DataDefinition(numerical_columns=columns)
    start = time.perf_counter()
    report = Report([DataDriftPreset(columns=columns)])
    report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
out["seconds"] = time.perf_counter() - start
with open("/proc/self/status") as status:
    hwm = next(line for line in status if line.startswith("VmHWM:"))
out["peak_rss_mb"] = int(hwm.split()[1]) / 1024
out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

#: Every process builds the same frames from the same seeds (no file format in the way).
DATA = f"""
import numpy as np
import pandas as pd

NAMES = [f"f{{i:02d}}" for i in range({FEATURES})]


def reference_frame():
    values = np.random.default_rng(11).normal(size=({ROWS}, {FEATURES}))
    return pd.DataFrame(values, columns=NAMES, copy=False)


def current_frame():
    values = np.random.default_rng(12).normal(size=({ROWS}, {FEATURES}))
    values[:, :{SHIFTED}] += {SHIFT}
    return pd.DataFrame(values, columns=NAMES, copy=False)
"""


def _prepare(folder: Path) -> None:
    from opsloop.plugins import make_manager
    from opsloop.profile_store import save_profile
    from opsloop.profiles import profile_frame
    from opsloop.project import Project

    (folder / "bench_data.py").write_text(DATA)
    sys.path.insert(0, str(folder))
    from bench_data import reference_frame  # type: ignore[import-not-found]

    root = folder / "project"
    root.mkdir()
    (root / "opsloop.toml").write_text('[project]\nname = "bench"\n')
    project = Project.open(root, plugins=make_manager(), environ={})
    profile = profile_frame(reference_frame())
    profile.model, profile.version = "bench", "1"
    save_profile(project, profile)
    project.close()


def _run(mode: str, folder: Path) -> dict[str, Any]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(folder)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DO_NOT_TRACK": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = time.perf_counter() - start
    return out


def main() -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="opsloop-bench-drift-") as tmp:
        folder = Path(tmp)
        _prepare(folder)
        profile_bytes = sum(p.stat().st_size for p in (folder / "project").rglob("prf_*.json"))
        for round_ in range(ROUNDS):
            order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                runs[mode].append(_run(mode, folder))
                print(f"round {round_ + 1} {mode}: {runs[mode][-1]}", file=sys.stderr)

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    check_s, evidently_s = median("opsloop-check", "seconds"), median("evidently", "seconds")
    check_mb = median("opsloop-check", "peak_rss_mb")
    evidently_mb = median("evidently", "peak_rss_mb")
    profile_s = median("opsloop-profile", "seconds")
    speedup = evidently_s / check_s
    memory = check_mb / evidently_mb
    return {
        "benchmark": "drift",
        "rows": ROWS,
        "features": FEATURES,
        "shifted": f"{SHIFTED} features by {SHIFT} sd",
        "rounds": ROUNDS,
        "python": platform.python_version(),
        "modes": {
            m: {
                "median_s": round(median(m, "seconds"), 4),
                "min_s": round(min(r["seconds"] for r in runs[m]), 4),
                "process_s": round(median(m, "process_seconds"), 2),
                "peak_rss_mb": round(median(m, "peak_rss_mb"), 1),
                "drifted_features": runs[m][0].get("drifted_features"),
            }
            for m in MODES
        },
        "profile_json_bytes": profile_bytes,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "speedup_vs_evidently": round(speedup, 1),
        "memory_vs_evidently": round(memory, 3),
        "profile_build_s": round(profile_s, 3),
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "memory": round(TARGET_MEMORY, 3),
            "profile_s": TARGET_PROFILE_S,
        },
        "meets_speedup": speedup >= TARGET_SPEEDUP,
        "meets_memory": memory <= TARGET_MEMORY,
        "meets_profile": profile_s <= TARGET_PROFILE_S,
    }


def doc_lines(result: dict[str, Any]) -> list[str]:
    from datetime import UTC, datetime

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    rows = [
        ("baseline", "build the 100,000 x 50 window, nothing else"),
        ("opsloop-check", "`load_profile` (SHA-256 checked) + `profile` detector check"),
        ("opsloop-profile", "build the reference profile (100,000 x 50)"),
        ("psi-ks", "opsloop-evidently `psi-ks` on both frames"),
        ("evidently", "Evidently `DataDriftPreset` run on both frames (no HTML)"),
    ]
    modes = result["modes"]
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, Python "
        f"{result['python']}, {result['rounds']} interleaved rounds, each run in its own process "
        f"(1-minute load average {result['load_average'][0]} at the start, "
        f"{result['load_average'][1]} at the end, on 2 cores shared with other work).",
        "",
        "| run | what is timed | median s | process s | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for mode, what in rows:
        m = modes[mode]
        lines.append(
            f"| {mode} | {what} | {m['median_s']} | {m['process_s']} | {m['peak_rss_mb']} |"
        )
    lines += [
        "",
        f"- Check vs Evidently: **{result['speedup_vs_evidently']}x faster** (target ≥ "
        f"{result['targets']['speedup']:.0f}x: {verdict(result['meets_speedup'])}); whole-process "
        f"peak memory **{result['memory_vs_evidently']}x** Evidently's (target ≤ 0.333: "
        f"{verdict(result['meets_memory'])}).",
        f"- Profile build: **{result['profile_build_s']} s** (target ≤ 1 s: "
        f"{verdict(result['meets_profile'])}); the stored profile is "
        f"{result['profile_json_bytes'] / 1024:.0f} KB of JSON.",
        f"- Features the check flagged: {', '.join(modes['opsloop-check']['drifted_features'])} "
        f"(the {SHIFTED} shifted ones).",
        "",
        "```json",
        json.dumps(result, indent=1),
        "```",
    ]
    return lines


DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
START, END = "<!-- drift-results:start -->", "<!-- drift-results:end -->"


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

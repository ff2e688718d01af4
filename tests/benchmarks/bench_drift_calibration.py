"""Calibration of the built-in drift check with its default settings (issue 11).

A reference of 100,000 rows x 50 normal features (10% missing in one of them) is profiled
once; then windows are drawn and checked against the stored profile:

* no drift, 5,000-row windows: the dataset verdict says drift in <= 5%;
* a 0.25 sd mean shift in 5 of 50 features, 5,000-row windows: dataset drift in >= 95%,
  with exactly those 5 features named;
* a 0.02 sd shift in every feature, 100,000-row windows: flagged in <= 5% (significant,
  but too small to matter);
* the missing rate of one feature from 10% to 30%, 5,000-row windows: found in >= 95%.

``.venv/bin/python tests/benchmarks/bench_drift_calibration.py [--write-doc]``
(``BENCH_WINDOWS``, default 200 per scenario; about 3 minutes).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

WINDOWS = int(os.environ.get("BENCH_WINDOWS", "200"))
FEATURES = [f"f{i:02d}" for i in range(50)]
MISSING = "f07"


def _window(
    rng: np.random.Generator,
    rows: int,
    shift: float = 0.0,
    shifted: int = 0,
    missing: float = 0.10,
) -> pd.DataFrame:
    values = rng.normal(size=(rows, len(FEATURES)))
    values[:, :shifted] += shift
    frame = pd.DataFrame(values, columns=FEATURES, copy=False)
    frame.loc[rng.random(rows) < missing, MISSING] = np.nan
    return frame


def main() -> dict[str, Any]:
    from opsloop.drift import DriftSettings, check_profile
    from opsloop.profiles import profile_frame

    rng = np.random.default_rng(20261127)
    settings = DriftSettings()  # the defaults: what [monitor] ships with
    reference = profile_frame(_window(rng, 100_000))
    scenarios: dict[str, dict[str, Any]] = {}

    def run(name: str, target: str, make: Any, hit: Any, windows: int = WINDOWS) -> None:
        start = time.perf_counter()
        hits = sum(bool(hit(check_profile(reference, make(), settings))) for _ in range(windows))
        rate = hits / windows
        bound, at_most = float(target[2:]), target.startswith("<=")
        scenarios[name] = {
            "windows": windows,
            "hits": hits,
            "rate": round(rate, 4),
            "target": target,
            "meets_target": rate <= bound if at_most else rate >= bound,
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"{name}: {hits}/{windows} ({rate:.1%}), target {target}", file=sys.stderr)

    run("no drift, 5,000 rows: dataset drift", "<=0.05", lambda: _window(rng, 5_000),
        lambda r: r.drifted)  # fmt: skip
    run("0.25 sd in 5 of 50, 5,000 rows: dataset drift", ">=0.95",
        lambda: _window(rng, 5_000, 0.25, 5), lambda r: r.drifted)  # fmt: skip
    run("0.25 sd in 5 of 50, 5,000 rows: exactly those 5 named", ">=0.95",
        lambda: _window(rng, 5_000, 0.25, 5),
        lambda r: r.drifted_features == FEATURES[:5])  # fmt: skip
    run("0.02 sd in all 50, 100,000 rows: dataset drift", "<=0.05",
        lambda: _window(rng, 100_000, 0.02, 50), lambda r: r.drifted)  # fmt: skip
    found = [(MISSING, "missing_rate")]
    run("missing rate 10% -> 30% in one feature, 5,000 rows: found", ">=0.95",
        lambda: _window(rng, 5_000, missing=0.30),
        lambda r: [(q.column, q.type) for q in r.quality] == found)  # fmt: skip
    run("no drift, 5,000 rows: any data-quality finding", "<=0.05", lambda: _window(rng, 5_000),
        lambda r: r.quality)  # fmt: skip
    return {
        "benchmark": "drift_calibration",
        "reference_rows": 100_000,
        "features": len(FEATURES),
        "settings": {k: v for k, v in vars(settings).items()},
        "python": platform.python_version(),
        "scenarios": scenarios,
        "meets_all": all(s["meets_target"] for s in scenarios.values()),
    }


def doc_lines(result: dict[str, Any]) -> list[str]:
    from datetime import UTC, datetime

    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {result['python']}, default "
        "settings, a 100,000-row reference of 50 normal features.",
        "",
        "| scenario | windows | flagged | rate | target | |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in result["scenarios"].items():
        target = s["target"].replace("<=", "≤ ").replace(">=", "≥ ")
        lines.append(
            f"| {name} | {s['windows']} | {s['hits']} | {s['rate']:.1%} | {target} | "
            f"{'met' if s['meets_target'] else 'MISSED'} |"
        )
    lines += ["", "```json", json.dumps(result, indent=1), "```"]
    return lines


START, END = "<!-- drift-calibration:start -->", "<!-- drift-calibration:end -->"


if __name__ == "__main__":
    outcome = main()
    print(json.dumps(outcome, indent=1))
    if "--write-doc" in sys.argv:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_drift import write_doc

        write_doc(doc_lines(outcome), START, END)

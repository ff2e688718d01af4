"""`%load_ext opsloop_jupyter` in a fresh interpreter, beside IPython's own `%load_ext autoreload`.

Target (issue 13): <= 0.5 s, importing no vendor SDK until used. Each case runs in a new
Python process (an IPython shell, as a fresh kernel has one) RUNS times, interleaved; only
the magic call itself is timed, inside the process. For context, the first use of the
widgets (`import opsloop_jupyter.widgets`, which brings in ipywidgets) is timed too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

RUNS = int(os.environ.get("BENCH_RUNS", "10"))
TARGET_S = 0.5
CASES = {
    "%load_ext opsloop_jupyter": "shell.run_line_magic('load_ext', 'opsloop_jupyter')",
    "%load_ext opsloop": "shell.run_line_magic('load_ext', 'opsloop')",
    "%load_ext autoreload (anchor)": "shell.run_line_magic('load_ext', 'autoreload')",
    "import opsloop_jupyter.widgets (first widget use)": "import opsloop_jupyter.widgets",
}
SCRIPT = """
import time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t0 = time.perf_counter()
{call}
print(time.perf_counter() - t0)
"""


def measure() -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(RUNS):
        for name, call in CASES.items():
            out = subprocess.run(
                [sys.executable, "-c", SCRIPT.format(call=call)],
                capture_output=True,
                text=True,
                check=True,
            )
            samples[name].append(float(out.stdout.strip().splitlines()[-1]))
    return samples


def main() -> dict[str, object]:
    samples = measure()
    anchor = statistics.median(samples["%load_ext autoreload (anchor)"])
    rows = []
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append(
            {
                "case": name,
                "median_s": round(median, 4),
                "max_s": round(max(values), 4),
                "vs_autoreload": round(median / anchor, 2),
                "meets_target": median <= TARGET_S if name.startswith("%load_ext") else None,
            }
        )
    report = {"benchmark": "jupyter_load_ext", "runs": RUNS, "target_s": TARGET_S, "rows": rows}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

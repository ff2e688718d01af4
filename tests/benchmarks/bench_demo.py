"""`opsloop demo` wall time on this machine (target: <= 180 s once set up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 180.0


def main() -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="opsloop-demo-bench-")) / "demo"
    opsloop = str(Path(sys.executable).parent / "opsloop")
    start = time.perf_counter()
    out = subprocess.run(
        [opsloop, "demo", str(folder)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"}, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(
            f"demo failed ({out.returncode}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    report = {
        "benchmark": "demo",
        "seconds": round(seconds, 1),
        "target_s": TARGET_S,
        "meets_target": seconds <= TARGET_S,
        "ratio_to_target": round(seconds / TARGET_S, 2),
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

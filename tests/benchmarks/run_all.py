"""Run every benchmark and write the figures into docs/benchmarks.md (between markers)."""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_cli_start
import bench_demo

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def main() -> None:
    cli = bench_cli_start.main()
    demo = bench_demo.main()
    lines = [
        START,
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"Python {platform.python_version()}, {cli['runs']} interleaved runs per command.",
        "",
        "| command | median s | min s | max s | vs `mlflow --help` | vs `dlt --help` "
        "| target ≤ 0.3 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in cli["rows"]:  # type: ignore[union-attr]
        target = {True: "met", False: "MISSED", None: "(anchor)"}[r["meets_target"]]
        lines.append(
            f"| `{r['command']}` | {r['median_s']} | {r['min_s']} | {r['max_s']} | "
            f"{r['vs_mlflow_help']}x | {r['vs_dlt_help']}x | {target} |"
        )
    lines += [
        "",
        f"`opsloop demo`: {demo['seconds']} s wall (target ≤ {demo['target_s']:.0f} s: "
        f"{'met' if demo['meets_target'] else 'MISSED'}; {demo['ratio_to_target']}x the budget).",
        "",
        "Raw JSON:",
        "",
        "```json",
        json.dumps({"cli": cli, "demo": demo}, indent=1),
        "```",
        END,
    ]
    text = DOC.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + "\n".join(lines) + tail)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()

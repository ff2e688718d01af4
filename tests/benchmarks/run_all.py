"""Run every benchmark and write the figures into docs/benchmarks.md (between markers).

The serving benchmark (about 9 minutes) needs wrk; without it that section is left as it
was and the run says so. The drift benchmarks take about 7 minutes.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import bench_audit
import bench_cli_start
import bench_decode_bomb
import bench_demo
import bench_drift
import bench_drift_calibration
import bench_drift_to_incident
import bench_registry_load
import bench_retrain_loop
import bench_serving

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
REGISTRY_START, REGISTRY_END = "<!-- registry-results:start -->", "<!-- registry-results:end -->"


def _replace(text: str, start: str, end: str, lines: list[str]) -> str:
    """``text`` with the block between the ``start`` and ``end`` markers replaced."""
    head, found, rest = text.partition(start)
    if not found:
        raise SystemExit(f"{DOC} lacks the marker {start}")
    _, _, tail = rest.partition(end)
    return head + "\n".join([start, *lines, end]) + tail


def registry_lines(reg: dict[str, Any]) -> list[str]:
    """The registry-load section: medians, the ratio and the raw JSON."""
    ml = reg["mlflow_pyfunc_load_model"]
    op = reg["opsloop_resolve_and_load"]
    verdict = "met" if reg["meets_target"] else "MISSED"
    return [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"Python {reg['python']}, MLflow {reg['mlflow']}, {reg['runs']} interleaved loads each.",
        "",
        "| loader | median ms | min ms | max ms |",
        "|---|---|---|---|",
        f'| `mlflow.pyfunc.load_model("{reg["uri"]}")` | {ml["median_ms"]} | {ml["min_ms"]} '
        f"| {ml['max_ms']} |",
        f"| opsloop resolve `@champion` + load, {reg['artifact_files_hashed_per_load']} files "
        f"SHA-256-checked | {op['median_ms']} | {op['min_ms']} | {op['max_ms']} |",
        "",
        f"Ratio opsloop / MLflow: {reg['ratio']}x (target ≤ {reg['target_ratio']}x: {verdict}).",
        "",
        "```json",
        json.dumps(reg, indent=1),
        "```",
    ]


def main() -> None:
    cli = bench_cli_start.main()
    demo = bench_demo.main()
    reg = bench_registry_load.main()
    lines = [
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
    ]
    text = _replace(DOC.read_text(), START, END, lines)
    text = _replace(text, REGISTRY_START, REGISTRY_END, registry_lines(reg))
    DOC.write_text(text)
    print(f"wrote {DOC}")
    bench_drift.write_doc(bench_drift.doc_lines(bench_drift.main()))
    calibration = bench_drift_calibration.main()
    bench_drift.write_doc(
        bench_drift_calibration.doc_lines(calibration),
        bench_drift_calibration.START,
        bench_drift_calibration.END,
    )
    bench_decode_bomb.write_doc(bench_decode_bomb.main())
    bench_retrain_loop.write_doc(bench_retrain_loop.doc_lines(bench_retrain_loop.main()))
    bench_drift_to_incident.write_doc(
        bench_drift_to_incident.doc_lines(bench_drift_to_incident.main())
    )
    bench_audit.write_doc(bench_audit.doc_lines(bench_audit.main()))
    if shutil.which("wrk") is None:  # the serving benchmark drives the servers with wrk
        print("skipped the serving benchmark: wrk is not installed (apt-get install -y wrk)")
        return
    bench_serving.write_doc(bench_serving.main())


if __name__ == "__main__":
    main()

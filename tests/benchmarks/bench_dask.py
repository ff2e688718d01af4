"""Batch scoring of 10 million rows: a two-worker Dask LocalCluster against the
single-process path, on the same machine, in one run, outputs compared row for row.

Target (issue 15): the LocalCluster is faster than the single-process path and its output
matches it row for row.

Both sides run exactly what ``opsloop batch score`` runs (``score_anywhere``, default
chunk size) on the same registered model (the breast-cancer LogisticRegression pipeline
trained and registered through opsloop-mlflow, 30 float features) and the same input (a
folder of Parquet files, 10 million rows); the only difference is ``[plugin.dask]
enabled = true`` (a LocalCluster of 2 worker processes x 1 thread, started and stopped
inside the timed run). Each run is a fresh process; rounds alternate the sides. With
``--malloc-variant`` a third side runs Dask with Dask's own malloc setting
(``MALLOC_TRIM_THRESHOLD_=65536``, glibc's dynamic mmap threshold) instead of the plugin's
default (64 MiB and 16 MiB) for comparison.

``.venv/bin/python tests/benchmarks/bench_dask.py [--rows N] [--rounds R]
[--malloc-variant] [--write-doc]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- dask-results:start -->", "<!-- dask-results:end -->"
MODEL = "breast_cancer"
FILE_ROWS = 500_000


def make_registry(folder: Path) -> Path:
    """A project whose MLflow registry holds the breast-cancer model as champion."""
    import opsloop_mlflow.plugin
    import pandas as pd
    from opsloop_mlflow._vendor import import_mlflow

    from opsloop import registry
    from opsloop.interfaces import Dataset
    from opsloop.plugins import make_manager
    from opsloop.project import Project

    import_mlflow()
    root = folder / "project"
    root.mkdir(parents=True)
    (root / "opsloop.toml").write_text('[project]\nname = "bench-dask"\n', encoding="utf-8")
    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    frame = pd.read_csv(io.StringIO(text))
    project = Project.open(root, plugins=make_manager(opsloop_mlflow.plugin), environ={})
    try:
        data = Dataset(name="breast_cancer", frame=frame, load_ids=["bench"])
        trained = project.hook.train_model(project=project, data=data, target="target", params={})
        ref = registry.register_model(project, MODEL, trained, {"load_ids": ["bench"]})
        registry.set_alias(project, MODEL, "champion", ref.version)
    finally:
        project.close()
    return root


def make_input(folder: Path, rows: int) -> Path:
    """``rows`` rows of the 30 features (resampled, jittered) in files of 500,000 rows."""
    import numpy as np
    import pandas as pd

    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    base = pd.read_csv(io.StringIO(text)).drop(columns="target")
    data = folder / "input"
    data.mkdir()
    rng = np.random.default_rng(0)
    values = base.to_numpy()
    for i, start in enumerate(range(0, rows, FILE_ROWS)):
        n = min(FILE_ROWS, rows - start)
        picked = values[rng.integers(0, len(values), n)]
        picked = picked * rng.normal(1.0, 0.02, picked.shape)
        frame = pd.DataFrame(picked, columns=base.columns)
        frame.insert(0, "row_id", np.arange(start, start + n, dtype=np.int64))
        frame.to_parquet(data / f"day-{i:03d}.parquet", row_group_size=100_000, index=False)
    return data


def project_copy(registry: Path, folder: Path, config: str) -> Path:
    root = folder
    shutil.copytree(registry, root)
    with (root / "opsloop.toml").open("a", encoding="utf-8") as fh:
        fh.write(config)
    return root


def score(root: Path, data: Path, output: Path) -> dict[str, Any]:
    """:func:`score_here` in a fresh process (a LocalCluster's nanny leaves its worker
    variables in os.environ, and glibc reads MALLOC_* once, at a process's start)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__, "--side", str(root), str(data), str(output)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"side run failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def score_here(root: Path, data: Path, output: Path) -> dict[str, Any]:
    """One timed ``opsloop batch score`` equivalent, from opening the project to the end."""
    from opsloop_fastapi.batch import score_anywhere

    from opsloop.project import Project
    from opsloop.registry import get_store

    started = time.perf_counter()
    project = Project.open(root)
    try:
        settings = project.settings("fastapi")
        ref = get_store(project).resolve(MODEL, "champion")
        result, engine = score_anywhere(
            project, ref, data, output, chunk_rows=settings.batch_chunk_rows
        )
    finally:
        project.close()
    seconds = time.perf_counter() - started
    return {"engine": engine or "local", "seconds": round(seconds, 2), "rows": result.rows,
            "parts": result.parts, "rows_per_s": round(result.rows / seconds)}  # fmt: skip


def same_rows(a: Path, b: Path) -> dict[str, Any]:
    """Every column of the two outputs, read in part order, equal value for value."""
    import pyarrow.dataset as ds

    left = ds.dataset(sorted(str(p) for p in a.glob("part-*.parquet")), format="parquet")
    right = ds.dataset(sorted(str(p) for p in b.glob("part-*.parquet")), format="parquet")
    names = left.schema.names
    assert names == right.schema.names, (names, right.schema.names)
    unequal = [n for n in names if not left.to_table(columns=[n]).column(0).equals(
        right.to_table(columns=[n]).column(0))]  # fmt: skip
    return {"columns": len(names), "rows": left.count_rows(), "unequal_columns": unequal,
            "match": not unequal and left.count_rows() == right.count_rows()}  # fmt: skip


def run(rows: int, rounds: int, malloc_variant: bool) -> dict[str, Any]:
    import dask
    import distributed

    work = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    try:
        registry = make_registry(work / "registry")
        made = time.perf_counter()
        data = make_input(work, rows)
        print(f"input: {rows} rows in {time.perf_counter() - made:.1f} s", file=sys.stderr)
        sides = {
            "local": "",
            "dask": "\n[plugin.dask]\nenabled = true\nn_workers = 2\nthreads_per_worker = 1\n",
        }
        if malloc_variant:  # Dask's own: 65536, the mmap threshold left to glibc
            variant = "malloc_trim_threshold = 65536\nmalloc_mmap_threshold = 0\n"
            sides["dask_trim_65536"] = sides["dask"] + variant
        roots = {k: project_copy(registry, work / k, v) for k, v in sides.items()}
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in sides}
        loads: list[list[float]] = []
        for round_ in range(rounds):
            for side, root in roots.items():
                output = work / f"out-{side}"
                shutil.rmtree(output, ignore_errors=True)
                loads.append([round(x, 2) for x in os.getloadavg()])
                runs[side].append(score(root, data, output))
                print(side, round_, runs[side][-1], file=sys.stderr)
        check = same_rows(work / "out-local", work / "out-dask")
        best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
        ratio = round(best["local"]["seconds"] / best["dask"]["seconds"], 2)
        return {
            "rows": rows,
            "rounds": rounds,
            "runs": runs,
            "best": best,
            "speedup_dask_over_local": ratio,
            "outputs_match": check,
            "meets_target": ratio > 1.0 and check["match"],
            "load_average_before_each_run": loads,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "measured_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def lines(res: dict[str, Any]) -> list[str]:
    best = res["best"]
    verdict = "met" if res["meets_target"] else "MISSED"
    out = [
        f"Measured {res['measured_at']} on {platform.machine()}, {res['cpus']} CPUs shared with "
        f"other jobs, Python {res['python']}, Dask {res['dask']}; {res['rows']:,} rows, "
        f"best of {res['rounds']} round(s) per side.",
        "",
        "| side | seconds | rows/s | parts |",
        "|---|---|---|---|",
    ]
    for side, run_ in best.items():
        out.append(f"| {side} | {run_['seconds']} | {run_['rows_per_s']:,} | {run_['parts']} |")
    match = res["outputs_match"]
    out += [
        "",
        f"Speed-up of the LocalCluster over one process: {res['speedup_dask_over_local']}x "
        f"(target > 1x and equal output: {verdict}). Outputs equal row for row: "
        f"{match['match']} ({match['rows']:,} rows x {match['columns']} columns compared).",
        f"Load average (1, 5, 15 min) before each run: {res['load_average_before_each_run']}; "
        f"after: {res['load_average_after']}.",
        "",
        "```json",
        json.dumps(res, indent=1),
        "```",
    ]
    return out


def write_doc(res: dict[str, Any]) -> None:
    text = DOC.read_text(encoding="utf-8")
    head, found, rest = text.partition(START)
    if not found:
        raise SystemExit(f"{DOC} lacks the marker {START}")
    _, _, tail = rest.partition(END)
    DOC.write_text(head + "\n".join([START, *lines(res), END]) + tail, encoding="utf-8")


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "1")))
    parser.add_argument("--malloc-variant", action="store_true")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--side", nargs=3, metavar=("ROOT", "DATA", "OUTPUT"), help="internal")
    args = parser.parse_args(argv)
    if args.side:
        side = score_here(*(Path(a) for a in args.side))
        print(json.dumps(side))
        return side
    res = run(args.rows, args.rounds, args.malloc_variant)
    print(json.dumps(res, indent=1))
    if args.write_doc:
        write_doc(res)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])

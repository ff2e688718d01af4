"""Batch scoring: Parquet, CSV and warehouse tables in chunks, idempotent per output part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from fastapi_testkit import MODEL, breast_cancer, features, store_of, trained_model
from opsloop_fastapi.batch import run_batch

from opsloop import serve
from opsloop.errors import OpsloopError


def source_frame() -> pd.DataFrame:
    frame = breast_cancer()[features()].copy()
    frame.insert(0, "patient_id", [f"p{i:04d}" for i in range(len(frame))])
    return frame


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("part-*.parquet"))


def read_output(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(folder / name) for name in parts(folder)], ignore_index=True)


def check_scores(out: pd.DataFrame, frame: pd.DataFrame) -> None:
    model = trained_model()
    assert out["patient_id"].tolist() == frame["patient_id"].tolist()
    assert out["prediction"].tolist() == model.predict(frame[features()]).tolist()
    np.testing.assert_allclose(out["probability_1"], model.predict_proba(frame[features()])[:, 1])


def test_parquet_in_chunks_then_a_rerun_skips_every_finished_part(
    project_factory: Any, tmp_path: Path
) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    frame = source_frame()
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, row_group_size=37)  # row groups that do not match the chunks
    output = tmp_path / "out"
    seen: list[tuple[int, int | None]] = []
    result = run_batch(
        project, ref, source, output, chunk_rows=100, progress=lambda *a: seen.append(a)
    )
    assert (result.rows, result.parts, result.skipped, result.written) == (569, 6, 0, 6)
    assert parts(output) == [f"part-{i:05d}.parquet" for i in range(6)]
    assert [len(pd.read_parquet(output / p)) for p in parts(output)] == [100] * 5 + [69]
    check_scores(read_output(output), frame)
    assert seen[0] == (0, 569) and seen[-1] == (569, 569)
    manifest = json.loads((output / "_manifest.json").read_text())
    assert manifest["complete"] is True and manifest["rows"] == 569
    assert manifest["model"]["version"] == "1" and manifest["fingerprint"].startswith("files:")
    stamps = {p: (output / p).stat().st_mtime_ns for p in parts(output)}

    again = run_batch(project, ref, source, output, chunk_rows=100)
    assert (again.rows, again.skipped, again.written) == (569, 6, 0)
    assert {p: (output / p).stat().st_mtime_ns for p in parts(output)} == stamps


def test_a_half_written_run_is_finished_and_only_the_broken_parts_redone(
    project_factory: Any, tmp_path: Path
) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    frame = source_frame()
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    output = tmp_path / "out"
    run_batch(project, ref, source, output, chunk_rows=120)
    stamps = {p: (output / p).stat().st_mtime_ns for p in parts(output)}
    # a crash: part 1 gone, part 3 cut off mid-write, a temporary file left behind
    (output / "part-00001.parquet").unlink()
    broken = output / "part-00003.parquet"
    broken.write_bytes(broken.read_bytes()[:100])
    (output / ".part-00004.parquet.tmp").write_bytes(b"half")
    manifest = json.loads((output / "_manifest.json").read_text())
    manifest["complete"] = False
    (output / "_manifest.json").write_text(json.dumps(manifest))

    result = run_batch(project, ref, source, output, chunk_rows=120)
    assert (result.rows, result.parts, result.skipped, result.written) == (569, 5, 3, 2)
    assert not (output / ".part-00004.parquet.tmp").exists()
    redone = {p for p in parts(output) if (output / p).stat().st_mtime_ns != stamps.get(p)}
    assert redone == {"part-00001.parquet", "part-00003.parquet"}
    check_scores(read_output(output), frame)


def test_a_warehouse_table_is_read_only_and_in_order(project_factory: Any, tmp_path: Path) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    frame = source_frame()
    con = duckdb.connect(str(project.warehouse_path))
    con.execute("CREATE SCHEMA raw")
    con.register("frame", frame)
    con.execute("CREATE TABLE raw.patients AS SELECT * FROM frame")
    con.close()
    output = tmp_path / "out"
    rows = serve.score_batch(project, ref, "duckdb:raw.patients", output)
    assert rows == 569
    check_scores(read_output(output), frame)
    entry = [e for e in project.audit.entries() if e["action"] == "serve.batch"][-1]
    assert entry["after"] == {"input": "duckdb:raw.patients", "output": str(output), "rows": 569}
    with pytest.raises(OpsloopError, match=r"raw\.nope"):
        serve.score_batch(project, ref, "duckdb:raw.nope", tmp_path / "other")
    with pytest.raises(OpsloopError, match=r"must be duckdb:DATASET\.TABLE"):
        serve.score_batch(project, ref, "duckdb:nope; drop table x", tmp_path / "other")


def test_the_output_of_another_run_is_never_mixed(project_factory: Any, tmp_path: Path) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    source = tmp_path / "in.parquet"
    source_frame().to_parquet(source)
    output = tmp_path / "out"
    run_batch(project, ref, source, output, chunk_rows=200)
    with pytest.raises(OpsloopError, match="holds the output of another run"):
        run_batch(project, ref, source, output, chunk_rows=100)
    source_frame().iloc[:300].to_parquet(source)  # the input changed
    with pytest.raises(OpsloopError, match="holds the output of another run"):
        run_batch(project, ref, source, output, chunk_rows=200)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OpsloopError, match="not a batch output folder"):
        run_batch(project, ref, source, foreign, chunk_rows=200)


def test_bad_inputs_are_one_line_errors(project_factory: Any, tmp_path: Path) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    missing = source_frame().drop(columns=["mean_radius"])
    missing.to_parquet(tmp_path / "missing.parquet")
    with pytest.raises(OpsloopError, match=r"lacks column.*mean_radius"):
        run_batch(project, ref, tmp_path / "missing.parquet", tmp_path / "o1", chunk_rows=100)
    text = source_frame()
    text["mean_area"] = text["mean_area"].astype(object)
    text.loc[250, "mean_area"] = "big"
    text.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(OpsloopError, match="row 250, column 'mean_area': 'big' is not a number"):
        run_batch(project, ref, tmp_path / "text.csv", tmp_path / "o2", chunk_rows=100)
    assert parts(tmp_path / "o2") == ["part-00000.parquet", "part-00001.parquet"]  # kept
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(OpsloopError, match=r"unknown format '\.xlsx'"):
        run_batch(project, ref, tmp_path / "data.xlsx", tmp_path / "o3", chunk_rows=100)
    with pytest.raises(OpsloopError, match="does not exist"):
        serve.score_batch(project, ref, tmp_path / "nope.parquet", tmp_path / "o4")


def test_batch_score_command(project_factory: Any, tmp_path: Path) -> None:
    import typer
    from opsloop_fastapi.cli import register
    from typer.testing import CliRunner

    from opsloop.cli import context

    project = project_factory()
    source = tmp_path / "in.parquet"
    source_frame().to_parquet(source)
    cli = typer.Typer()
    cli.callback()(lambda: None)
    register(cli)
    context.set_plugins(project.plugins)
    context.set_project_path(project.root)
    try:
        args = ["batch", "score", MODEL, "--input", str(source), "--output", str(tmp_path / "o"),
                "--chunk-size", "250"]  # fmt: skip
        first = CliRunner().invoke(cli, args)
        second = CliRunner().invoke(cli, args)
        bad = CliRunner().invoke(cli, [*args[:-2], "--alias", "nope"])
    finally:
        context.set_project_path(None)
        context.set_plugins(None)  # type: ignore[arg-type]
    assert first.exit_code == 0, first.output
    assert "scored 569 rows into 3 parts" in first.output and "0 parts already done" in first.output
    assert "3 parts already done, 0 written" in second.output
    assert isinstance(bad.exception, OpsloopError)
    batches = [e for e in project.audit.entries() if e["action"] == "serve.batch"]
    assert [b["detail"]["written"] for b in batches] == [3, 0]

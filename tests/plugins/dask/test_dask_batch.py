"""Batch scoring on a real two-worker LocalCluster: equal to the local path row for row,
idempotent per partition, resumable after a partial run, the model loaded once per worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dask_testkit import MODEL, scored_frame
from opsloop_fastapi.batch import run_batch, score_anywhere

from opsloop.errors import OpsloopError
from opsloop.registry import get_store


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("part-*.parquet"))


def read_output(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(folder / n) for n in parts(folder)], ignore_index=True)


def stamps(folder: Path) -> dict[str, int]:
    return {n: (folder / n).stat().st_mtime_ns for n in parts(folder)}


def partitioned_input(folder: Path, rows: int, files: int, row_group: int) -> pd.DataFrame:
    """A folder of ``files`` Parquet files (row groups of ``row_group`` rows)."""
    frame = scored_frame(rows)
    folder.mkdir(parents=True)
    step = -(-rows // files)
    for i, start in enumerate(range(0, rows, step)):
        frame.iloc[start : start + step].to_parquet(
            folder / f"day={i:02d}.parquet", row_group_size=row_group, index=False
        )
    return frame


def on_cluster(make_project: Any, cluster: Any) -> Any:
    return make_project(f'\n[plugin.dask]\naddress = "{cluster.scheduler_address}"\n')


def loads(cluster: Any) -> dict[str, list[str]]:
    from distributed import Client

    def loaded() -> list[str]:
        from opsloop_dask.tasks import LOADS

        return list(LOADS)

    with Client(cluster, set_as_default=False) as client:
        return dict(client.run(loaded))


def test_dask_output_equals_the_local_path_row_for_row_and_a_rerun_skips_every_part(
    make_project: Any, cluster: Any, tmp_path: Path
) -> None:
    project = on_cluster(make_project, cluster)
    ref = get_store(project).resolve(MODEL, "champion")
    frame = partitioned_input(tmp_path / "in", 20_000, files=3, row_group=2_500)
    local = run_batch(project, ref, tmp_path / "in", tmp_path / "local", chunk_rows=4_000)
    assert local.rows == 20_000 and local.parts == 5  # the local path cuts 4,000-row chunks
    seen: list[tuple[int, int | None]] = []
    result, engine = score_anywhere(
        project, ref, tmp_path / "in", tmp_path / "out", chunk_rows=4_000,
        progress=lambda *a: seen.append(a),
    )  # fmt: skip
    assert engine == "dask"
    assert (result.rows, result.written, result.skipped) == (20_000, result.parts, 0)
    # 3 files of 6,667 / 6,667 / 6,666 rows in row groups of 2,500: two partitions each
    assert result.parts == 6 and parts(tmp_path / "out") == [
        f"part-{i:05d}.parquet" for i in range(6)
    ]
    out = read_output(tmp_path / "out")
    pd.testing.assert_frame_equal(out, read_output(tmp_path / "local"))
    assert out["row_id"].tolist() == frame["row_id"].tolist()
    assert {"prediction", "probability_0", "probability_1"} <= set(out.columns)
    assert seen[0] == (0, 20_000) and seen[-1] == (20_000, 20_000)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["complete"] is True and manifest["rows"] == 20_000
    assert manifest["engine"] == "dask" and len(manifest["parts"]) == 6
    # the model was loaded once per worker, not once per partition
    per_worker = loads(cluster)
    assert len(per_worker) == 2 and all(len(v) <= 1 for v in per_worker.values())
    assert sum(len(v) for v in per_worker.values()) >= 1

    before = stamps(tmp_path / "out")
    again, _ = score_anywhere(project, ref, tmp_path / "in", tmp_path / "out", chunk_rows=4_000)
    assert (again.rows, again.parts, again.skipped, again.written) == (20_000, 6, 6, 0)
    assert stamps(tmp_path / "out") == before


def test_a_killed_run_resumes_without_duplicates(
    make_project: Any, cluster: Any, tmp_path: Path
) -> None:
    project = on_cluster(make_project, cluster)
    ref = get_store(project).resolve(MODEL, "champion")
    frame = partitioned_input(tmp_path / "in", 12_000, files=1, row_group=1_000)
    out = tmp_path / "out"
    first, _ = score_anywhere(project, ref, tmp_path / "in", out, chunk_rows=2_000)
    assert first.parts == 6
    before = stamps(out)
    # what a kill leaves: a part renamed after the manifest was last written (its entry
    # is missing), a part cut off mid-write, a temporary file, and a part gone
    manifest = json.loads((out / "_manifest.json").read_text())
    del manifest["parts"]["part-00002.parquet"]
    manifest["complete"] = False
    (out / "_manifest.json").write_text(json.dumps(manifest))
    data = (out / "part-00003.parquet").read_bytes()
    (out / "part-00003.parquet").write_bytes(data[: len(data) // 2])
    (out / "part-00004.parquet").unlink()
    (out / ".part-00005.parquet.0a1b.tmp").write_bytes(b"half")
    resumed, _ = score_anywhere(project, ref, tmp_path / "in", out, chunk_rows=2_000)
    assert (resumed.rows, resumed.skipped, resumed.written) == (12_000, 3, 3)
    after = stamps(out)
    assert {n for n in after if after[n] == before.get(n)} == {
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00005.parquet",
    }
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", *parts(out)]
    scored = read_output(out)
    assert scored["row_id"].tolist() == frame["row_id"].tolist()  # no row twice, none lost


def test_another_runs_output_or_a_foreign_folder_is_refused(
    make_project: Any, cluster: Any, tmp_path: Path
) -> None:
    project = on_cluster(make_project, cluster)
    ref = get_store(project).resolve(MODEL, "champion")
    partitioned_input(tmp_path / "in", 3_000, files=1, row_group=1_000)
    run_batch(project, ref, tmp_path / "in", tmp_path / "local", chunk_rows=1_000)
    with pytest.raises(OpsloopError, match="output of another run"):
        score_anywhere(project, ref, tmp_path / "in", tmp_path / "local", chunk_rows=1_000)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(OpsloopError, match="not a batch output folder"):
        score_anywhere(project, ref, tmp_path / "in", tmp_path / "mine", chunk_rows=1_000)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_csv_input_is_scored_in_this_process_with_a_note(
    make_project: Any, cluster: Any, tmp_path: Path
) -> None:
    project = on_cluster(make_project, cluster)
    ref = get_store(project).resolve(MODEL, "champion")
    scored_frame(1_500).to_csv(tmp_path / "in.csv", index=False)
    notes: list[str] = []
    result, engine = score_anywhere(
        project, ref, tmp_path / "in.csv", tmp_path / "out", chunk_rows=1_000, note=notes.append
    )
    assert engine == "" and (result.rows, result.parts) == (1_500, 2)
    assert notes == [f"dask scores Parquet only; scoring {tmp_path / 'in.csv'} in this process"]
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert "engine" not in manifest and manifest["chunk_rows"] == 1_000  # the local path's

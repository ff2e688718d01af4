"""read_dataset: tables back from the warehouse with lineage, without dlt's columns."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dlt_plugin_testdata import breast_cancer, daily_files, write_csv
from opsloop_dlt.reader import content_hash

from opsloop.errors import OpsloopError
from opsloop.interfaces import Dataset, SourceSpec
from opsloop.project import Project


def load(project: Project, folder: Path, name: str = "breast_cancer", **kw: object) -> list[str]:
    source = SourceSpec(name=name, kind="landing_files", options={"path": str(folder)}, **kw)  # type: ignore[arg-type]
    return project.hook.load_source(project=project, source=source).load_ids


def read(project: Project, table: str = "breast_cancer", dataset: str = "raw") -> Dataset:
    return project.hook.read_dataset(project=project, table=table, dataset=dataset)


def test_read_returns_the_data_with_lineage_and_no_dlt_columns(
    project: Project, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    daily_files(landing, days=3)
    first = load(project, landing)
    write_csv(landing / "2026-11-09.csv", *_two_rows())
    second = load(project, landing)

    data = read(project)
    assert isinstance(data, Dataset) and data.name == "breast_cancer"
    header, rows = breast_cancer()
    assert list(data.frame.columns) == header
    assert not [c for c in data.frame.columns if c.startswith("_dlt")]
    assert len(data.frame) == len(rows) + 2
    assert data.load_ids == sorted(first + second) and len(data.load_ids) == 2
    assert data.frame["target"].dtype.kind == "i"
    assert data.frame["mean_radius"].iloc[0] == pytest.approx(float(rows[0][0]))
    assert len(data.content_hash) == 64

    # the read-only connection was closed: the warehouse can be written again
    with duckdb.connect(str(project.warehouse_path)) as con:
        con.execute("SELECT 1")


def test_content_hash_is_stable_and_ignores_row_and_column_order(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    header, rows = breast_cancer()
    # project A: four daily files; project B: the same rows in one file, in reverse order
    a, b = make_project(), make_project()
    daily_files(tmp_path / "a", days=4)
    write_csv(tmp_path / "b" / "all.csv", header, list(reversed(rows)))
    load(a, tmp_path / "a")
    load(b, tmp_path / "b")
    hash_a, hash_b = read(a).content_hash, read(b).content_hash
    assert hash_a == hash_b == read(a).content_hash

    frame = read(a).frame
    assert content_hash(frame[list(reversed(frame.columns))]) == hash_a
    changed = frame.copy()
    changed.loc[0, "mean_radius"] += 0.001
    assert content_hash(changed) != hash_a
    assert content_hash(frame.iloc[1:]) != hash_a
    assert content_hash(pd.concat([frame, frame.iloc[:1]])) != hash_a  # duplicates count


def test_unknown_table_lists_the_tables_that_exist(project: Project, tmp_path: Path) -> None:
    write_csv(tmp_path / "l" / "d.csv", *_two_rows())
    load(project, tmp_path / "l", name="sales")
    load(project, tmp_path / "l", name="Daily-Orders")
    with pytest.raises(OpsloopError) as err:
        read(project, table="salez")
    message = str(err.value)
    assert "salez" in message and "daily_orders, sales" in message
    assert "_dlt" not in message

    with pytest.raises(OpsloopError, match=r"no dataset 'rawz'.*datasets: raw"):
        read(project, table="sales", dataset="rawz")

    # names are matched as given or as dlt normalizes them
    assert len(read(project, table="Daily-Orders").frame) == 2


def test_nothing_loaded_yet_says_what_to_run(project: Project) -> None:
    with pytest.raises(OpsloopError, match=r"nothing was loaded yet.*opsloop ingest run"):
        read(project)
    assert not project.warehouse_path.exists()


def test_dataset_option_and_table_without_lineage(project: Project, tmp_path: Path) -> None:
    write_csv(tmp_path / "l" / "d.csv", *_two_rows())
    load(project, tmp_path / "l", name="sales", dataset="bronze")
    assert len(read(project, table="sales", dataset="bronze").frame) == 2
    with duckdb.connect(str(project.warehouse_path)) as con:
        con.execute("CREATE TABLE bronze.manual AS SELECT 1 AS x")
    with pytest.raises(OpsloopError, match="not loaded by dlt"):
        read(project, table="manual", dataset="bronze")


def _two_rows() -> tuple[list[str], list[list[object]]]:
    header, rows = breast_cancer()
    return header, [rows[0], rows[1]]

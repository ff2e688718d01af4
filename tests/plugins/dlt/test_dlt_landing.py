"""Landing-file loads through the load_source hook: real dlt pipelines into a real DuckDB file."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt_plugin_testdata import daily_files, write_csv

from opsloop.errors import OpsloopError
from opsloop.interfaces import SourceSpec
from opsloop.project import Project
from opsloop.records import LoadRecord


def spec(folder: Path, name: str = "sales", **kwargs: Any) -> SourceSpec:
    options = {"path": str(folder), **kwargs.pop("options", {})}
    return SourceSpec(name=name, kind="landing_files", options=options, **kwargs)


def load(project: Project, source: SourceSpec) -> LoadRecord:
    record = project.hook.load_source(project=project, source=source)
    assert isinstance(record, LoadRecord)
    return record


def query(project: Project, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(project.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_first_load_counts_rows_second_is_empty_new_day_loads_only_its_rows(
    project: Project, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    counts = daily_files(landing, days=4)
    source = spec(landing, name="breast_cancer")

    first = load(project, source)
    assert first.status == "loaded"
    assert first.tables == {"breast_cancer": 569} and sum(counts) == 569
    assert len(first.load_ids) == 1
    assert first.pipeline == "opsloop_breast_cancer" and first.dataset == "raw"
    assert first.destination == f"duckdb:{project.warehouse_path}"
    assert first.started_at <= first.finished_at
    assert query(project, "SELECT count(*) FROM raw.breast_cancer") == [(569,)]

    second = load(project, source)
    assert second.status == "empty"
    assert second.load_ids == [] and second.rows == 0

    write_csv(landing / "2026-11-05.csv", ["mean_radius", "target"], [[11.1, 0], [12.2, 1]])
    third = load(project, source)
    assert third.status == "loaded" and third.tables == {"breast_cancer": 2}
    assert third.load_ids[0] not in first.load_ids
    rows = query(
        project,
        "SELECT _dlt_load_id, count(*) FROM raw.breast_cancer GROUP BY 1 ORDER BY 1",
    )
    assert rows == [(first.load_ids[0], 569), (third.load_ids[0], 2)]
    # the columns the new file lacks are NULL, not an error
    assert query(project, "SELECT count(*) FROM raw.breast_cancer WHERE mean_texture IS NULL") == [
        (2,)
    ]
    # nothing was written outside the project home
    assert (project.home / "dlt" / "pipelines" / "opsloop_breast_cancer").is_dir()


def test_file_with_an_old_mtime_is_still_new(project: Project, tmp_path: Path) -> None:
    """A file delivered with a preserved, older mtime (cp -p, rsync -t) is loaded too."""
    landing = tmp_path / "landing"
    write_csv(landing / "b.csv", ["id"], [[1]])
    source = spec(landing)
    assert load(project, source).rows == 1
    write_csv(landing / "a.csv", ["id"], [[2], [3]], mtime=time.time() - 86400 * 30)
    assert load(project, source).tables == {"sales": 2}


def test_rewritten_file_is_reloaded_and_merge_updates_by_key(
    project: Project, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    day1 = write_csv(landing / "d1.csv", ["id", "price"], [[1, 10.0], [2, 20.0]])
    write_csv(landing / "d2.csv", ["id", "price"], [[3, 30.0]])
    source = spec(landing, write_disposition="merge", primary_key=("id",))
    assert load(project, source).rows == 3

    later = day1.stat().st_mtime + 5
    write_csv(day1, ["id", "price"], [[1, 11.0], [2, 22.0]], mtime=later)
    again = load(project, source)
    assert again.tables == {"sales": 2}  # only the re-written file was read
    assert query(project, "SELECT id, price FROM raw.sales ORDER BY id") == [
        (1, 11.0),
        (2, 22.0),
        (3, 30.0),
    ]
    assert load(project, source).status == "empty"


def test_append_keeps_history_of_a_rewritten_file(project: Project, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    day1 = write_csv(landing / "d1.csv", ["id"], [[1], [2]])
    source = spec(landing)
    load(project, source)
    write_csv(day1, ["id"], [[1], [2], [4]], mtime=day1.stat().st_mtime + 5)
    assert load(project, source).rows == 3
    assert query(project, "SELECT count(*) FROM raw.sales") == [(5,)]


def test_replace_rebuilds_the_table_from_the_folder_and_skips_when_unchanged(
    project: Project, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1], [2]])
    day2 = write_csv(landing / "d2.csv", ["id"], [[3]])
    source = spec(landing, write_disposition="replace")
    first = load(project, source)
    assert first.rows == 3

    unchanged = load(project, source)
    assert unchanged.status == "empty"
    assert query(project, "SELECT count(*) FROM raw.sales") == [(3,)]  # not truncated

    day2.unlink()
    rebuilt = load(project, source)
    assert rebuilt.status == "loaded" and rebuilt.rows == 2
    assert query(project, "SELECT id FROM raw.sales ORDER BY id") == [(1,), (2,)]


def test_merge_without_primary_key_is_refused(project: Project, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1]])
    with pytest.raises(OpsloopError, match=r"merge.*primary_key"):
        load(project, spec(landing, write_disposition="merge"))


def test_missing_folder_and_no_matching_files_name_the_path(
    project: Project, tmp_path: Path
) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(OpsloopError) as err:
        load(project, spec(missing))
    assert str(missing) in str(err.value) and "\n" not in str(err.value)

    empty = tmp_path / "empty"
    write_csv(empty / "notes.txt", ["x"], [])
    with pytest.raises(OpsloopError, match=r"no files match '\*\.csv'") as err:
        load(project, spec(empty))
    assert str(empty) in str(err.value)
    assert not project.warehouse_path.exists()  # nothing was even created


def test_glob_option_picks_files(project: Project, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "sales_1.txt", ["id"], [[1]])
    write_csv(landing / "other.csv", ["id"], [[2], [3]])
    record = load(project, spec(landing, options={"glob": "sales_*.txt"}))
    assert record.rows == 1


def test_other_kinds_are_left_to_other_plugins(project: Project) -> None:
    source = SourceSpec(name="x", kind="kafka", options={})
    assert project.hook.load_source(project=project, source=source) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"id,value\n5,1.5\n6,1,2\n", "Expected 2 fields in line 3"),
        (b"id,value\n5,1.5,x\n6,1,y\n", "a row has more fields than the header"),
        (b"", "No columns to parse"),
        (b"id,name\n1,caf\xe9\n", "not valid utf-8 text"),
    ],
    ids=["ragged-row", "extra-field-on-every-row", "empty-file", "bad-encoding"],
)
def test_malformed_csv_names_the_file_and_loads_nothing(
    project: Project, tmp_path: Path, content: bytes, reason: str
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "2026-11-01.csv", ["id", "value"], [[1, 0.5], [2, 1.5]])
    source = spec(landing)
    assert load(project, source).rows == 2

    write_csv(landing / "2026-11-02.csv", ["id", "value"], [[3, 2.5], [4, 3.5]])
    bad = landing / "2026-11-03.csv"
    bad.write_bytes(content)
    with pytest.raises(OpsloopError) as err:
        load(project, source)
    message = str(err.value)
    assert str(bad) in message and reason in message and "\n" not in message
    # the good new file read before the bad one was not loaded either
    assert query(project, "SELECT count(*) FROM raw.sales") == [(2,)]

    bad.unlink()
    fixed = load(project, source)
    assert fixed.rows == 2
    assert query(project, "SELECT count(*) FROM raw.sales") == [(4,)]


def test_failure_in_the_load_step_leaves_no_partial_rows_and_is_retried(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data jobs ran but the package never completed: its rows are removed, state rolls back."""
    from dlt.destinations.job_client_impl import SqlJobClientBase

    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1], [2]])
    source = spec(landing)
    first = load(project, source)
    write_csv(landing / "d2.csv", ["id"], [[3], [4], [5]])

    original = SqlJobClientBase.complete_load
    seen: list[str] = []

    def crash(self: Any, load_id: str) -> None:
        seen.append(load_id)
        # the package's rows are in the table at this point
        rows = self.sql_client.execute_sql(
            f"SELECT count(*) FROM {self.sql_client.make_qualified_table_name('sales')} "
            f"WHERE _dlt_load_id = '{load_id}'"
        )
        assert rows[0][0] == 3
        raise RuntimeError("disk full while completing the load")

    monkeypatch.setattr(SqlJobClientBase, "complete_load", crash)
    with pytest.raises(OpsloopError, match="disk full") as err:
        load(project, source)
    assert "nothing was loaded" in str(err.value)
    assert seen, "the load step did run"
    assert query(project, "SELECT count(*) FROM raw.sales") == [(2,)]
    assert query(project, f"SELECT count(*) FROM raw.sales WHERE _dlt_load_id = '{seen[0]}'") == [
        (0,)
    ]
    dataset = project.hook.read_dataset(project=project, table="sales", dataset="raw")
    assert dataset.load_ids == first.load_ids

    monkeypatch.setattr(SqlJobClientBase, "complete_load", original)
    retry = load(project, source)
    assert retry.rows == 3 and retry.status == "loaded"
    assert query(project, "SELECT count(*) FROM raw.sales") == [(5,)]
    assert load(project, source).status == "empty"


def test_packages_left_by_a_crashed_run_are_discarded(project: Project, tmp_path: Path) -> None:
    """A process killed after extract leaves a pending package; the next run starts clean."""
    import dlt
    from opsloop_dlt.pipeline import open_pipeline

    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1], [2]])
    source = spec(landing)
    load(project, source)
    write_csv(landing / "d2.csv", ["id"], [[3]])

    pipeline = open_pipeline(project, source)
    pipeline.extract(dlt.resource([{"id": 99}], name="sales"))  # then the process "dies"
    assert pipeline.has_pending_data

    record = load(project, source)
    assert record.rows == 1
    assert sorted(query(project, "SELECT id FROM raw.sales")) == [(1,), (2,), (3,)]


def test_column_hints_fix_types_across_files(project: Project, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id", "amount"], [[1, 10], [2, 20]])
    write_csv(landing / "d2.csv", ["id", "amount"], [[3, 2.5]])
    source = spec(landing, options={"columns": {"amount": "double"}})
    load(project, source)
    types = dict(
        query(
            project,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'sales'",
        )
    )
    assert types["amount"] == "DOUBLE" and "amount__v_double" not in types


def test_relative_path_resolves_against_the_project_root(project: Project, tmp_path: Path) -> None:
    write_csv(project.root / "landing" / "d1.csv", ["id"], [[1]])
    record = load(project, spec(Path("landing")))
    assert record.rows == 1


def test_pipeline_folder_lives_in_the_project_home(project: Project, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1]])
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        load(project, spec(landing))
    finally:
        os.chdir(old)
    assert list(cwd.iterdir()) == []
    working = project.home / "dlt" / "pipelines" / "opsloop_sales"
    assert (working / "state.json").is_file()
    # completed packages keep their metadata but no second copy of the data
    assert not [p for p in working.rglob("completed_jobs/*") if p.is_file()]


def test_warehouse_locked_by_another_process(project: Project, tmp_path: Path) -> None:
    """Another process holds DuckDB's write lock: a one-line error, then a normal retry."""
    import subprocess
    import sys

    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1], [2]])
    source = spec(landing)
    load(project, source)
    write_csv(landing / "d2.csv", ["id"], [[3]])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(60)",
            str(project.warehouse_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(OpsloopError, match="in use by another process") as err:
            load(project, source)
        assert str(project.warehouse_path) in str(err.value) and "\n" not in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    assert load(project, source).rows == 1
    assert query(project, "SELECT count(*) FROM raw.sales") == [(3,)]


def test_deleting_the_warehouse_reloads_everything(project: Project, tmp_path: Path) -> None:
    """The warehouse is the source of truth: the pipeline's local state does not outlive it."""
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id"], [[1], [2]])
    write_csv(landing / "d2.csv", ["id"], [[3]])
    source = spec(landing)
    assert load(project, source).rows == 3
    project.warehouse_path.unlink()
    again = load(project, source)
    assert again.status == "loaded" and again.rows == 3
    assert query(project, "SELECT count(*) FROM raw.sales") == [(3,)]


def test_a_load_leaves_no_opsloop_variables_behind(project: Project, tmp_path: Path) -> None:
    """opsloop reads OPSLOOP_* variables as config: a load must not add any to the process."""
    write_csv(tmp_path / "landing" / "d1.csv", ["id"], [[1]])
    before = {k: v for k, v in os.environ.items() if k.startswith("OPSLOOP_")}
    load(project, spec(tmp_path / "landing"))
    after = {k: v for k, v in os.environ.items() if k.startswith("OPSLOOP_")}
    assert after == before
    assert "LOAD__DELETE_COMPLETED_JOBS" not in os.environ
    reopened = Project.open(project.root, plugins=project.plugins)  # environ: os.environ
    reopened.close()

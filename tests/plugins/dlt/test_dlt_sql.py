"""SQL sources against the local PostgreSQL: incremental cursor, merge, replace, errors."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import duckdb
import pytest
import sqlalchemy as sa

from opsloop.errors import OpsloopError
from opsloop.interfaces import SourceSpec
from opsloop.project import Project

POSTGRES_URL = os.environ.get(
    "OPSLOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema holding ``orders``; dropped afterwards."""
    schema = f"opsloop_dlt_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {schema}"))
        con.execute(
            sa.text(
                f"CREATE TABLE {schema}.orders (id integer PRIMARY KEY, "
                "amount numeric(10, 2), updated_at timestamptz NOT NULL)"
            )
        )
        con.execute(
            sa.text(
                f"INSERT INTO {schema}.orders VALUES "
                "(1, 10.50, '2026-11-01T10:00Z'), (2, 20.00, '2026-11-02T10:00Z')"
            )
        )
    yield schema
    with engine.begin() as con:
        con.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def execute(sql: str) -> None:
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as con:
        con.execute(sa.text(sql))
    engine.dispose()


def orders(schema: str, **kwargs: object) -> SourceSpec:
    options = {"credentials": POSTGRES_URL, "table": "orders", "schema": schema}
    return SourceSpec(name="orders", kind="sql", options=options, **kwargs)  # type: ignore[arg-type]


def test_incremental_merge_loads_only_new_and_changed_rows(
    project: Project, pg_schema: str
) -> None:
    source = orders(
        pg_schema, write_disposition="merge", primary_key=("id",), incremental="updated_at"
    )
    first = project.hook.load_source(project=project, source=source)
    assert first.status == "loaded" and first.tables == {"orders": 2}
    assert first.pipeline == "opsloop_orders"

    second = project.hook.load_source(project=project, source=source)
    assert second.status == "empty" and second.load_ids == []

    execute(
        f"INSERT INTO {pg_schema}.orders VALUES (3, 30, '2026-11-03T10:00Z'); "
        f"UPDATE {pg_schema}.orders SET amount = 11, updated_at = '2026-11-04T00:00Z' "
        "WHERE id = 1"
    )
    third = project.hook.load_source(project=project, source=source)
    assert third.tables == {"orders": 2}

    data = project.hook.read_dataset(project=project, table="orders", dataset="raw")
    frame = data.frame.sort_values("id").reset_index(drop=True)
    assert list(frame["id"]) == [1, 2, 3]
    assert [float(a) for a in frame["amount"]] == [11.0, 20.0, 30.0]
    assert data.load_ids == sorted(first.load_ids + third.load_ids)
    assert "_dlt_id" not in frame.columns


def test_replace_reads_the_whole_table_every_time(project: Project, pg_schema: str) -> None:
    source = orders(pg_schema, write_disposition="replace", incremental="updated_at")
    assert project.hook.load_source(project=project, source=source).rows == 2
    execute(f"DELETE FROM {pg_schema}.orders WHERE id = 2")
    again = project.hook.load_source(project=project, source=source)
    assert again.rows == 1
    with duckdb.connect(str(project.warehouse_path), read_only=True) as con:
        assert con.execute("SELECT id FROM raw.orders").fetchall() == [(1,)]


def test_config_declared_sql_source_reads_credentials_from_the_environment(
    make_project: Callable[..., Project], pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'orders', kind = 'sql', table = 'orders', "
        f"schema = '{pg_schema}', credentials_env = 'SHOP_DB_URL', incremental = 'updated_at'}}]\n"
    )
    (source,) = [s for group in project.hook.register_sources(project=project) for s in group]
    assert source.options == {
        "table": "orders",
        "schema": pg_schema,
        "credentials_env": "SHOP_DB_URL",
        "backend": "pyarrow",
    }
    monkeypatch.delenv("SHOP_DB_URL", raising=False)
    with pytest.raises(OpsloopError, match="SHOP_DB_URL"):
        project.hook.load_source(project=project, source=source)
    # trust auth ignores the password: it must still never reach a file
    url = sa.engine.make_url(POSTGRES_URL).set(password="pw-never-stored")
    monkeypatch.setenv("SHOP_DB_URL", url.render_as_string(hide_password=False))
    assert project.hook.load_source(project=project, source=source).rows == 2
    for path in project.home.rglob("*"):
        if path.is_file():
            assert b"pw-never-stored" not in path.read_bytes(), path


def test_unreachable_database_and_missing_table_are_one_line_errors_without_secrets(
    project: Project, pg_schema: str
) -> None:
    with pytest.raises(OpsloopError, match=r"no table 'public\.nope'"):
        project.hook.load_source(
            project=project,
            source=SourceSpec(
                name="x",
                kind="sql",
                options={"credentials": POSTGRES_URL, "table": "nope", "schema": "public"},
            ),
        )
    secret_url = "postgresql://postgres:s3cret-pw@127.0.0.1:1/test"
    with pytest.raises(OpsloopError, match="cannot connect to") as err:
        project.hook.load_source(
            project=project,
            source=SourceSpec(
                name="x", kind="sql", options={"credentials": secret_url, "table": "orders"}
            ),
        )
    assert "s3cret-pw" not in str(err.value) and "\n" not in str(err.value)
    assert not project.warehouse_path.exists()

"""Load one table of a SQL database (PostgreSQL, MariaDB, ... via SQLAlchemy) with dlt.

With ``incremental`` (a cursor column such as ``updated_at``) a run reads only rows whose
cursor is at or past the last value loaded; dlt keeps that value in its state, committed
with each load and restored from the warehouse. ``replace`` always reads the whole table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, first_line
from opsloop.redact import redact_text
from opsloop_dlt.pipeline import (
    add_side_tables,
    checked_batches,
    column_hints,
    current_columns,
    dlt_schema_contract,
    existing_keys,
    make_record,
    open_pipeline,
    report,
    restored_state,
    run,
    source_contract,
    table_name,
    utcnow,
    write_disposition,
)
from opsloop_dlt.settings import resolve_credentials

if TYPE_CHECKING:
    from opsloop.interfaces import SourceSpec
    from opsloop.project import Project
    from opsloop.records import LoadRecord


def load_sql_table(project: Project, source: SourceSpec) -> LoadRecord:
    """Load the new rows of ``options["table"]`` (all rows without a cursor, or for replace)."""
    started = utcnow()
    options = source.options
    remote_table = options.get("table")
    if not remote_table:
        raise OpsloopError(f"source '{source.name}': a sql source needs options['table']")
    url = resolve_credentials(options, source.name)
    disposition = write_disposition(source)
    table = table_name(source.name)
    _check_connection(url, source.name, str(remote_table), options.get("schema"))

    import dlt
    from dlt.sources.sql_database import sql_table

    from opsloop_dlt.contracts import BatchChecker

    pipeline = open_pipeline(project, source)
    restored_state(project, pipeline, source)
    cursor = source.incremental if source.write_disposition != "replace" else None
    backend = str(options.get("backend") or "pyarrow")
    contract = source_contract(project, source)
    checker = BatchChecker(
        source.name,
        contract,
        {**current_columns(pipeline, table), **(options.get("columns") or {})},
        existing_keys(project, pipeline.dataset_name, table, list(contract.unique))
        if contract and source.write_disposition == "append"
        else None,
    )
    where = f"table {options.get('schema') + '.' if options.get('schema') else ''}{remote_table}"
    rows_seen = [1]

    def check(batch: Any) -> Any:
        import pyarrow as pa

        if not isinstance(batch, pa.Table | pa.RecordBatch):  # the sqlalchemy backend: rows
            batch = pa.Table.from_pylist(list(batch) if isinstance(batch, list) else [batch])
        first = rows_seen[0]
        rows_seen[0] += batch.num_rows
        yield from checked_batches([(batch, where, first)], checker, table)

    def resources() -> Any:
        incremental = None
        if cursor:
            incremental = dlt.sources.incremental(
                cursor,
                initial_value=_cursor_value(options.get("start")),
                end_value=_cursor_value(options.get("end")),
                range_end="open",
            )
        resource = sql_table(
            credentials=url,
            table=str(remote_table),
            schema=options.get("schema"),
            incremental=incremental,
            reflection_level="full_with_precision",
            backend=backend,  # type: ignore[arg-type]
            chunk_size=int(options.get("chunk_rows") or 100_000),
        ).with_name(table)
        hints: dict[str, Any] = {"write_disposition": disposition}
        if source.primary_key:
            hints["primary_key"] = list(source.primary_key)
        if column_hints(source):
            hints["columns"] = column_hints(source)
        if dlt_schema_contract(contract):
            hints["schema_contract"] = dlt_schema_contract(contract)
        resource.apply_hints(**hints)
        resource.add_yield_map(check)
        return add_side_tables(resource, table)

    try:
        result = run(project, pipeline, source, resources, table)
        report(project, source, pipeline.dataset_name, table, checker, result.load_ids)
    finally:
        checker.close()
    return make_record(source, pipeline, project, table, result, started)


def _cursor_value(raw: Any) -> Any:
    """A backfill bound from config: an ISO date/time string becomes a datetime."""
    if raw is None or not isinstance(raw, str):
        return raw
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        return raw
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _check_connection(url: str, source: str, table: str, schema: str | None) -> None:
    """Fail early with one line when the database or the table cannot be reached."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError, ModuleNotFoundError) as exc:
        raise OpsloopError(
            f"source '{source}': unusable connection string {redact_text(_safe_url(url))}: "
            f"{_line(exc)}"
        ) from None
    try:
        with engine.connect() as con:
            if not sa.inspect(con).has_table(table, schema=schema):
                where = f"{schema}.{table}" if schema else table
                raise OpsloopError(
                    f"source '{source}': no table '{where}' in {_safe_url(url)}; check "
                    "'table' and 'schema'"
                )
    except sa.exc.SQLAlchemyError as exc:
        raise OpsloopError(
            f"source '{source}': cannot connect to {_safe_url(url)}: {_line(exc)}"
        ) from None
    finally:
        engine.dispose()


def _safe_url(url: str) -> str:
    """The connection string with its password masked."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never echo an unparsable secret
        return "<connection string>"


def _line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None)
    return redact_text(
        first_line(cause if isinstance(cause, BaseException) else exc) or type(exc).__name__
    )

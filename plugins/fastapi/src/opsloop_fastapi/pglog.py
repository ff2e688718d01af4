"""The prediction log in PostgreSQL (``log_format = "postgres"``): one table for every replica.

Parquet files are written per process; a team running several replicas may rather query one
table. The log's writer thread hands each converted Arrow table to :class:`PostgresStore`,
which encodes it to CSV in Arrow (no Python loop per row) and streams it through
``COPY ... FROM STDIN``, in one transaction with any DDL it needs: the table is created on
first use, a column not seen before is added (``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``)
and a column whose values no longer fit is widened (bigint to double precision, anything
else to text). A failed write is raised to the writer with the password removed; the
writer logs it and counts the rows as dropped, as for a failed Parquet write, and the
connection is opened again on the next write. psycopg is imported only when this format is
used.

:func:`read_log_postgres` reads a model's rows back through ``COPY (SELECT ...) TO STDOUT``,
Arrow's CSV reader and DuckDB, then :func:`~opsloop_fastapi.logframe.log_frame`, so the frame
is the Parquet reader's, column for column.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from opsloop_fastapi.entries import INPUT_PREFIX
from opsloop_fastapi.logframe import META_COLUMNS, SERVED_ROLES, log_frame, memory_duckdb

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from opsloop_fastapi.settings import Settings

Kind = Literal["predictions", "feedback"]

DOUBLE = "double precision"
TIMESTAMPTZ = "timestamp with time zone"
FLOAT_ARRAY = "double precision[]"
MAX_NAME_BYTES = 63  # PostgreSQL truncates longer identifiers
LOCK_TIMEOUT = "10s"  # DDL waits at most this long for readers and other writers

# (name, type as format_type() spells it, NOT NULL): created with the table
_BASE: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "predictions": (
        ("request_id", "text", True),
        ("row", "bigint", True),
        ("model", "text", True),
        ("model_version", "text", False),
        ("role", "text", False),
        ("logged_at", TIMESTAMPTZ, True),
        ("latency_ms", DOUBLE, False),
    ),
    "feedback": (
        ("request_id", "text", True),
        ("row", "bigint", True),
        ("model", "text", True),
        ("label_json", "text", False),
        ("received_at", TIMESTAMPTZ, True),
    ),
}
# (index name suffix, columns)
_INDEXES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "predictions": (("model_logged_at", ("model", "logged_at")), ("request_id", ("request_id",))),
    "feedback": (("request_id", ("request_id", "row")),),
}


class StoreError(RuntimeError):
    """A write to PostgreSQL failed; the message never holds the URL's password."""


def table_names(table: str) -> dict[Kind, str]:
    """The tables of both logs: ``<table>`` and ``<table>_feedback``."""
    return {"predictions": table, "feedback": f"{table}_feedback"}


def store_for(settings: Settings, kind: Kind, source: str = "settings") -> PostgresStore | None:
    """The store a log writes to when ``log_format = "postgres"``, else None."""
    if settings.log_format != "postgres":
        return None
    settings.check_log_store(source)
    url = settings.postgres_url() or ""
    return PostgresStore(url, table_names(settings.log_postgres_table)[kind], kind=kind)


class PostgresStore:
    """One log's table in PostgreSQL: appends Arrow tables with COPY on one connection."""

    def __init__(
        self, url: str, table: str, *, kind: Kind = "predictions", connect_timeout: float = 5.0
    ) -> None:
        self._url = url
        self.table = table
        self.kind = kind
        self.connect_timeout = connect_timeout
        self.where = f"{redact_dsn(url)} table {table}"
        self._conn: Any = None
        self._columns: dict[str, str] | None = None  # name -> type, as last seen
        self._lock = threading.Lock()  # the writer thread, or flush() from another thread
        self._sending = False  # rows went out on the connection in this attempt

    def __repr__(self) -> str:
        return f"PostgresStore({self.where})"

    __str__ = __repr__

    def append(self, table: pa.Table) -> None:
        """Write ``table`` in one transaction (DDL if needed, then COPY); StoreError if not."""
        with self._lock:
            try:
                self._append(table)
            except Exception as exc:  # noqa: BLE001 - raised again, without the password
                self._reset()  # reconnect and re-read the columns on the next write
                detail = clean_error(f"{type(exc).__name__}: {exc}", self._url)
                raise StoreError(f"{self.where}: {detail}") from None

    def close(self) -> None:
        """Close the connection (a later write opens a new one)."""
        with self._lock:
            self._reset()

    # ------------------------------------------------------------------ internals
    def _append(self, table: pa.Table) -> None:
        import psycopg
        from psycopg import sql

        names = table.column_names
        long = [n for n in names if len(n.encode()) > MAX_NAME_BYTES]
        if long:
            raise ValueError(f"column names longer than {MAX_NAME_BYTES} bytes: {long}")
        wanted = {n: pg_type(n, table.schema.field(n).type) for n in names}
        data = csv_bytes(table, wanted)  # before the transaction: locks are held shorter
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
            sql.Identifier(self.table), sql.SQL(", ").join(map(sql.Identifier, names))
        )
        for attempt in (1, 2):
            reused = self._conn is not None and not self._conn.closed
            if not reused:
                self._conn = connect(self._url, self.connect_timeout)
            self._sending = False
            try:
                self._write(self._conn, wanted, copy_sql, data)
                return
            except psycopg.OperationalError:
                # a connection the server closed while it sat idle (a restart, an idle
                # timeout) fails before any row is sent: once more on a new one
                if not reused or self._sending or attempt == 2:
                    raise
                self._reset()

    def _write(self, conn: Any, wanted: dict[str, str], copy_sql: Any, data: Any) -> None:
        with conn.transaction():
            self._prepare(conn, wanted)
            self._sending = True  # from here a failure may follow a commit: never retried
            with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                copy.write(memoryview(data))

    def _prepare(self, conn: Any, wanted: dict[str, str]) -> None:
        """Create the table, add and widen columns as ``wanted`` needs (under a lock)."""
        if self._columns is None:
            self._columns = catalog(conn, self.table)
        if self._columns and not any(_changes(self._columns, wanted)):
            return
        from psycopg import sql

        table = sql.Identifier(self.table)
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # replicas starting together would race on CREATE TABLE IF NOT EXISTS otherwise
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"opsloop:{self.table}"])
        columns: list[sql.Composable] = [
            sql.SQL("{} {}{}").format(
                sql.Identifier(name), sql.SQL(kind), sql.SQL(" NOT NULL" if required else "")
            )
            for name, kind, required in _BASE[self.kind]
        ]
        if self.kind == "feedback":  # insertion order: the newest of equal timestamps wins
            columns.append(sql.SQL("seq bigint GENERATED ALWAYS AS IDENTITY"))
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table, sql.SQL(", ").join(columns))
        )
        for suffix, on in _INDEXES[self.kind]:
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(f"{self.table}_{suffix}"),
                    table,
                    sql.SQL(", ").join(map(sql.Identifier, on)),
                )
            )
        known = catalog(conn, self.table)  # as another replica may have left it
        add, widen = _changes(known, wanted)
        clauses = [
            sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(sql.Identifier(n), sql.SQL(t))
            for n, t in add
        ] + [
            sql.SQL("ALTER COLUMN {0} TYPE {1} USING {0}::{1}").format(
                sql.Identifier(n), sql.SQL(t)
            )
            for n, t in widen
        ]
        if clauses:
            conn.execute(sql.SQL("ALTER TABLE {} ").format(table) + sql.SQL(", ").join(clauses))
            known = catalog(conn, self.table)
        self._columns = known

    def _reset(self) -> None:
        conn, self._conn, self._columns = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _changes(
    known: dict[str, str], wanted: dict[str, str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Columns to add, and columns to widen (with their new types)."""
    add = [(n, t) for n, t in wanted.items() if n not in known]
    widen = []
    for name, kind in wanted.items():
        if name in known:
            wider = widened(known[name], kind)
            if wider is not None:
                widen.append((name, wider))
    return add, widen


def widened(have: str, incoming: str) -> str | None:
    """The type a ``have`` column needs to also take ``incoming`` values; None: it does."""
    if have == incoming or have == "text" or (have == DOUBLE and incoming == "bigint"):
        return None
    if {have, incoming} <= {"bigint", DOUBLE}:
        return DOUBLE
    return "text"


# ---------------------------------------------------------------------- Arrow <-> SQL
def pg_type(name: str, kind: pa.DataType) -> str:
    """The column type for an Arrow column: numeric inputs are double precision."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return DOUBLE if name.startswith(INPUT_PREFIX) else "bigint"
    if pa.types.is_floating(kind):
        return DOUBLE
    if pa.types.is_timestamp(kind):
        return TIMESTAMPTZ if kind.tz else "timestamp without time zone"
    if pa.types.is_date(kind):
        return "date"
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        return FLOAT_ARRAY
    return "text"


def csv_bytes(table: pa.Table, types: dict[str, str]) -> pa.Buffer:
    """``table`` as CSV with a header, each column in a form its SQL type reads."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [_csv_column(table.column(n), types[n]) for n in table.column_names]
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.table(columns, names=table.column_names), sink)
    return sink.getvalue()


def _csv_column(column: Any, kind: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == FLOAT_ARRAY:  # Arrow's CSV writer has no lists: '{0.1,0.9}' literals
        joined = pc.binary_join(pc.cast(column, pa.list_(pa.string())), ",")
        return pc.binary_join_element_wise("{", joined, "}", "")
    text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    if kind == "text" and not text:
        try:
            return pc.cast(column, pa.string())
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            values = column.to_pylist()  # rare types (structs, lists of text): JSON text
            return pa.array(
                [None if v is None else json.dumps(v, default=str) for v in values], pa.string()
            )
    return column


def _arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "text": pa.string(),
        "bigint": pa.int64(),
        "integer": pa.int64(),
        "smallint": pa.int64(),
        DOUBLE: pa.float64(),
        "real": pa.float64(),
        "boolean": pa.bool_(),
        TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
        "timestamp without time zone": pa.timestamp("us"),
        "date": pa.date32(),
    }.get(kind, pa.string())  # arrays and anything else are read as their text


def _float_lists(column: Any) -> Any:
    """PostgreSQL array literals ('{0.1,0.9}') as list<double>."""
    import pyarrow as pa
    import pyarrow.compute as pc

    inner = pc.utf8_slice_codeunits(column, 1, -1)
    parts = pc.if_else(
        pc.equal(inner, ""), pa.scalar([], pa.list_(pa.string())), pc.split_pattern(inner, ",")
    )
    try:
        return pc.cast(parts, pa.list_(pa.float64()))
    except pa.ArrowInvalid:  # NULL elements (not written by opsloop): element by element
        values = [
            None if p is None else [None if x == "NULL" else float(x) for x in p]
            for p in parts.to_pylist()
        ]
        return pa.array(values, pa.list_(pa.float64()))


# ---------------------------------------------------------------------- connections
def connect(url: str, timeout: float = 5.0) -> Any:
    """A psycopg connection in autocommit mode, session time zone UTC."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = conninfo_to_dict(url)
    params.setdefault("connect_timeout", max(1, round(timeout)))
    params.setdefault("application_name", "opsloop")
    conn = psycopg.connect(autocommit=True, **params)
    conn.execute(
        "SELECT set_config('TimeZone', 'UTC', false), "
        "set_config('client_min_messages', 'warning', false)"
    )
    return conn


def catalog(conn: Any, table: str) -> dict[str, str]:
    """A table's columns and types in order ({} when it does not exist)."""
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        ['"' + table.replace('"', '""') + '"'],
    ).fetchall()
    return {name: kind for name, kind in rows}


def redact_dsn(url: str) -> str:
    """The URL as ``postgresql://user@host:port/dbname``: never the password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - its message may quote the URL itself
        return "<unparsable PostgreSQL URL>"
    user = str(params.get("user") or "")
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or user
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{dbname}"


def clean_error(text: str, url: str) -> str:
    """An error message with the URL and its password replaced by a redacted form."""
    from urllib.parse import unquote, urlsplit

    from opsloop.redact import redact_text

    secrets: set[str] = set()
    with contextlib.suppress(ValueError):
        raw = urlsplit(url).password
        if raw:
            secrets |= {raw, unquote(raw)}
    with contextlib.suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        secrets.add(str(conninfo_to_dict(url).get("password") or ""))
    if url:
        text = text.replace(url, redact_dsn(url))
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", text, flags=re.I)
    return redact_text(text)


# ---------------------------------------------------------------------- reading
def read_log_postgres(
    url: str,
    table: str,
    model: str,
    since: datetime | None = None,
    *,
    roles: tuple[str, ...] | None = SERVED_ROLES,
    labels: bool = True,
) -> pd.DataFrame | None:
    """Logged rows of ``model`` at or after ``since`` from ``table``, as :func:`read_log`.

    None when the table does not exist or holds no row of ``model`` (so another plugin may
    answer); feedback labels come from ``<table>_feedback``. ``since`` and ``roles`` are
    applied in SQL.
    """
    import psycopg

    from opsloop.errors import OpsloopError

    try:
        conn = connect(url)
    except psycopg.Error as exc:
        raise OpsloopError(
            f"could not read the prediction log from {redact_dsn(url)}: "
            f"{clean_error(str(exc), url)}"
        ) from None
    try:
        return _read(conn, table, model, since, roles, labels)
    except psycopg.Error as exc:
        raise OpsloopError(
            f"could not read the prediction log from {redact_dsn(url)} table {table}: "
            f"{clean_error(str(exc), url)}"
        ) from None
    finally:
        conn.close()


def _read(
    conn: Any,
    table: str,
    model: str,
    since: datetime | None,
    roles: tuple[str, ...] | None,
    labels: bool,
) -> pd.DataFrame | None:
    from psycopg import sql

    columns = catalog(conn, table)
    if not columns:
        return None
    name = sql.Identifier(table)
    probe = sql.SQL("SELECT 1 FROM {} WHERE model = %s LIMIT 1").format(name)
    if conn.execute(probe, [model]).fetchone() is None:
        return None
    where = [sql.SQL("model = %s")]
    params: list[Any] = [model]
    if since is not None:
        where.append(sql.SQL("logged_at >= %s"))
        params.append(since)
    if roles is not None:
        where.append(sql.SQL("coalesce(role, 'champion') = ANY(%s::text[])"))
        params.append(list(roles))
    raw = copy_out(conn, name, columns, sql.SQL(" AND ").join(where), params)
    raw = _without_empty_columns(raw)
    for column in (c for c, kind in columns.items() if kind == FLOAT_ARRAY):
        raw = raw.set_column(
            raw.column_names.index(column), column, _float_lists(raw.column(column))
        )
    feedback = None
    if labels:
        feedback = functools.partial(_read_feedback, conn, table, model, since)
    return log_frame([_to_pandas(raw)], model, since, roles, feedback)


def copy_out(conn: Any, table: Any, columns: dict[str, str], where: Any, params: list[Any]) -> Any:
    """``SELECT columns FROM table WHERE ...`` as an Arrow table, through COPY and CSV."""
    from psycopg import sql

    def select(name: str, kind: str) -> Any:
        column = sql.Identifier(name)
        if _arrow_type(kind) == _arrow_type("text") and kind != "text":
            return sql.SQL("{}::text AS {}").format(column, column)
        return column

    query = sql.SQL("COPY (SELECT {} FROM {} WHERE {}) TO STDOUT (FORMAT csv, HEADER true)").format(
        sql.SQL(", ").join(select(n, k) for n, k in columns.items()), table, where
    )
    return _copy_csv(conn, query, params, {n: _arrow_type(k) for n, k in columns.items()})


def _copy_csv(conn: Any, query: Any, params: list[Any], types: dict[str, Any]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    data = bytearray()
    with conn.cursor() as cursor, cursor.copy(query, params) as copy:
        for block in copy:
            data += block
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[""],  # PostgreSQL writes NULL unquoted and '' quoted
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )


def _without_empty_columns(table: Any) -> Any:
    """Drop the columns no row of this read has (other models' inputs in a shared table)."""
    if table.num_rows == 0:
        return table
    keep = (*META_COLUMNS, "model")
    empty = [
        n for n in table.column_names if n not in keep and table.column(n).null_count == len(table)
    ]
    return table.drop_columns(empty) if empty else table


def _to_pandas(table: Any) -> pd.DataFrame:
    """Through DuckDB, as the Parquet reader does, so both give the same dtypes."""
    con = memory_duckdb()
    try:
        return con.from_arrow(table).df()
    finally:
        con.close()


def _read_feedback(conn: Any, table: str, model: str, since: datetime | None) -> pd.DataFrame:
    """The newest label per (request_id, row) of ``model``: read_feedback's frame."""
    import pandas as pd
    from psycopg import sql

    feedback = table_names(table)["feedback"]
    columns = catalog(conn, feedback)
    if not columns:
        return pd.DataFrame(columns=["request_id", "row", "label", "received_at"])
    where: sql.Composable = sql.SQL("model = %s")
    params: list[Any] = [model]
    if since is not None:  # only labels of the rows being read: the request_id index
        where = sql.SQL(
            "model = %s AND request_id IN (SELECT request_id FROM {} WHERE model = %s "
            "AND logged_at >= %s)"
        ).format(sql.Identifier(table))
        params += [model, since]
    query = sql.SQL(
        'COPY (SELECT DISTINCT ON (request_id, "row") request_id, "row", label_json, '
        'received_at FROM {} WHERE {} ORDER BY request_id, "row", received_at DESC, seq DESC) '
        "TO STDOUT (FORMAT csv, HEADER true)"
    ).format(sql.Identifier(feedback), where)
    types = {n: _arrow_type(columns[n]) for n in ("request_id", "row", "label_json", "received_at")}
    frame = _copy_csv(conn, query, params, types).to_pandas()
    frame["label"] = [json.loads(v) for v in frame.pop("label_json")]
    return frame[["request_id", "row", "label", "received_at"]]

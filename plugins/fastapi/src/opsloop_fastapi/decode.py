"""Bounded request decoding: refuse a body that would decode to too many rows or bytes.

``max_body_bytes`` bounds what arrives on the wire, not what it decodes to: a 5 KB Parquet
file can hold a million rows. Each format is checked before its values are materialized:

- Parquet: the footer names the rows and, per column chunk, the number of values; fixed-width
  columns cost ``values x width``. String columns are read as dictionaries (indices plus
  the distinct values, never larger than what was sent) and their decoded length computed
  from those, so a dictionary-encoded bomb is refused without expanding it. Row groups are
  read one at a time and the running total is checked after each one.
- CSV: the header gives the columns and the newline count an upper bound on the rows; the
  parser stops at ``max_rows + 1`` rows.
- JSON: a structural count (containers and separators) bounds the parsed size before parsing;
  after parsing, the rows and columns of the request shape are counted before validation.

A refusal is :class:`DecodeTooLarge`: HTTP 413 with a message naming the limit, the value
found and the setting to raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: What one column costs beyond its values once it is a pandas column (object, index, dtype).
COLUMN_OVERHEAD = 1024
#: Bytes per decoded cell assumed for a table (a float64, a pointer to a Python object).
CELL_BYTES = 8
# Upper bounds on what orjson/json allocate per structural character (CPython 3.11, 64-bit):
# a list or dict with its slot in the parent (~72 B), a value and its slot (~32 B).
_JSON_CONTAINER_BYTES = 72
_JSON_VALUE_BYTES = 32
# a body this many times smaller than the limit cannot exceed it whatever its shape
_JSON_MAX_RATIO = _JSON_CONTAINER_BYTES // 3 + 1

_PARQUET_WIDTHS = {"BOOLEAN": 1, "INT32": 4, "FLOAT": 4, "INT64": 8, "DOUBLE": 8, "INT96": 12}


class DecodeTooLarge(Exception):
    """The body would decode to more rows or bytes than the server allows (HTTP 413)."""


@dataclass(frozen=True)
class DecodeLimits:
    """``max_rows`` rows and ``max_decoded_bytes`` decoded bytes per request."""

    max_rows: int
    max_decoded_bytes: int

    def rows(self, rows: int, what: str) -> None:
        """Refuse ``rows`` over ``max_rows``."""
        if rows > self.max_rows:
            raise DecodeTooLarge(
                f"the {what} body holds {rows} rows, more than max_rows = {self.max_rows} "
                "(plugin.fastapi.max_rows); send fewer rows per request or raise "
                "plugin.fastapi.max_rows"
            )

    def size(self, nbytes: int, what: str) -> None:
        """Refuse a decoded size over ``max_decoded_bytes``."""
        if nbytes > self.max_decoded_bytes:
            raise DecodeTooLarge(
                f"the {what} body would decode to about {_human(nbytes)} ({nbytes} bytes), "
                f"more than max_decoded_bytes = {self.max_decoded_bytes} "
                "(plugin.fastapi.max_decoded_bytes); send fewer rows or columns per request "
                "or raise plugin.fastapi.max_decoded_bytes"
            )

    def table(self, rows: int, columns: int, what: str) -> None:
        """Refuse a ``rows x columns`` table over either limit."""
        self.rows(rows, what)
        self.size(rows * columns * CELL_BYTES + columns * COLUMN_OVERHEAD, what)


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"  # pragma: no cover - unreachable


# ---------------------------------------------------------------------- JSON
def check_json_body(body: bytes, limits: DecodeLimits) -> None:
    """Refuse a JSON body whose parsed form could exceed ``max_decoded_bytes``.

    Free for bodies too small to reach the limit; otherwise three byte counts (memchr
    speed) give an upper bound on what the parser allocates.
    """
    if len(body) * _JSON_MAX_RATIO <= limits.max_decoded_bytes:
        return
    containers = body.count(b"[") + body.count(b"{")
    values = body.count(b",") + body.count(b":") + 1
    limits.size(len(body) + containers * _JSON_CONTAINER_BYTES + values * _JSON_VALUE_BYTES, "JSON")


def check_json_rows(payload: Any, limits: DecodeLimits, *, union: bool = False) -> None:
    """Count the rows and columns of a parsed request (opsloop's or MLflow's shapes).

    ``union``: the model has no signature, so records become a frame with a column for
    every key any record has (a thousand records with a different key each make a
    thousand-by-thousand frame); count the distinct keys. With a signature, unknown keys
    are refused one by one instead, and the first row's width is enough.
    """
    if type(payload) is not dict:
        return
    for key in ("records", "dataframe_records", "instances", "inputs"):
        value = payload.get(key)
        if type(value) is list:
            _check_rows(value, limits)
            if union and value and type(value[0]) is dict:
                keys: set[Any] = set()
                for row in value:
                    if type(row) is dict:
                        keys.update(row)
                limits.table(len(value), len(keys), "JSON")
        elif type(value) is dict and key in ("instances", "inputs"):  # columnar
            lengths = [len(v) for v in value.values() if type(v) is list]
            limits.table(max(lengths, default=1), len(value), "JSON")
    split = payload.get("dataframe_split")
    holder = split if type(split) is dict else payload
    data = holder.get("data")
    if type(data) is list:
        columns = holder.get("columns")
        width = len(columns) if type(columns) is list else _width(data[0] if data else None)
        limits.table(len(data), width, "JSON")


def _check_rows(rows: list[Any], limits: DecodeLimits) -> None:
    limits.rows(len(rows), "JSON")
    if rows:
        limits.table(len(rows), _width(rows[0]), "JSON")


def _width(row: Any) -> int:
    return len(row) if type(row) in (dict, list) else 1


# ---------------------------------------------------------------------- CSV
def read_csv(body: bytes, limits: DecodeLimits) -> pd.DataFrame:
    """A CSV body as a frame, refused before parsing when it could exceed the limits."""
    import csv
    import io

    import pandas as pd

    text = body.decode("utf-8")
    header = text.split("\n", 1)[0]
    columns = max(1, len(next(csv.reader([header]), [])))
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    rows = min(max(0, lines - 1), limits.max_rows + 1)  # at most this many are parsed
    limits.size(rows * columns * CELL_BYTES + columns * COLUMN_OVERHEAD + len(body), "CSV")
    frame = pd.read_csv(io.StringIO(text), nrows=limits.max_rows + 1)
    limits.rows(len(frame), "CSV")  # "more than max_rows" is all that is known past it
    return frame


# ---------------------------------------------------------------------- Parquet
def read_parquet(body: bytes, limits: DecodeLimits) -> pd.DataFrame:
    """A Parquet body as a frame; its footer and dictionaries are checked before decoding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pa.BufferReader(body)
    meta = pq.ParquetFile(source).metadata  # the footer only
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    limits.rows(max(meta.num_rows, sum(g.num_rows for g in groups)), "Parquet")
    schema = meta.schema
    estimate = meta.num_columns * COLUMN_OVERHEAD
    dictionary_paths: set[str] = set()
    for group in groups:
        for i in range(group.num_columns):
            chunk = group.column(i)
            values = max(0, chunk.num_values)
            kind = chunk.physical_type
            if kind in _PARQUET_WIDTHS:
                estimate += values * _PARQUET_WIDTHS[kind]
            elif kind == "FIXED_LEN_BYTE_ARRAY":
                estimate += values * max(1, schema.column(i).length or 1)
            else:  # BYTE_ARRAY: offsets plus the bytes; repeated values only known below
                estimate += values * CELL_BYTES + max(0, chunk.total_uncompressed_size)
                if chunk.has_dictionary_page:
                    dictionary_paths.add(chunk.path_in_schema)
    limits.size(estimate, "Parquet")
    reader = pq.ParquetFile(pa.BufferReader(body), read_dictionary=sorted(dictionary_paths) or None)
    tables = []
    decoded = 0
    for i in range(reader.num_row_groups):
        table = reader.read_row_group(i)
        decoded += sum(logical_nbytes(c) for col in table.columns for c in col.chunks)
        limits.rows(sum(t.num_rows for t in tables) + table.num_rows, "Parquet")
        limits.size(decoded + meta.num_columns * COLUMN_OVERHEAD, "Parquet")
        tables.append(table)
    if not tables:
        return pq.ParquetFile(pa.BufferReader(body)).read().to_pandas()
    table = pa.concat_tables(tables)
    if dictionary_paths:  # checked: now decode the strings as a plain read would give them
        table = table.cast(pq.ParquetFile(pa.BufferReader(body)).schema_arrow)
    return table.to_pandas()


def logical_nbytes(array: pa.Array) -> int:
    """Bytes ``array`` takes once decoded: dictionary columns counted as if expanded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_dictionary(kind):
        dictionary = array.dictionary
        if (
            pa.types.is_binary(dictionary.type)
            or pa.types.is_string(dictionary.type)
            or (
                pa.types.is_large_binary(dictionary.type)
                or pa.types.is_large_string(dictionary.type)
            )
        ):
            lengths = pc.take(pc.binary_length(dictionary), array.indices)
            total = pc.sum(lengths).as_py() or 0
            return int(total) + len(array) * CELL_BYTES
        return int(array.dictionary_decode().nbytes)
    if isinstance(array, pa.ListArray | pa.LargeListArray | pa.FixedSizeListArray):
        return len(array) * CELL_BYTES + logical_nbytes(array.values)
    if isinstance(array, pa.StructArray):
        return len(array) + sum(logical_nbytes(array.field(i)) for i in range(kind.num_fields))
    return int(array.nbytes)

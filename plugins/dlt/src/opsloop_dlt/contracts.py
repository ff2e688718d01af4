"""Data contracts checked during a load, batch by batch, in DuckDB over Arrow.

Each Arrow batch a source yields passes through :class:`BatchChecker` before dlt sees it:
columns are matched against the contract (schema drift follows ``schema_changes``), values
are cast to the declared types, and every rule (a SQL predicate), the key and the
nullability are evaluated in one vectorized DuckDB query over the batch (zero-copy). When
nothing needs a cast and every rule is a column rule the settings generate (not null, min,
max, allowed), pyarrow compute evaluates them instead, with the same SQL semantics. Rows
that pass go on to the table; rows that break a rule go to the quarantine table, with the
rules they broke, where they came from (file and line, or table and row) and the load id.
Both tables are written by the same load package: all or nothing.

Nothing here may call ``pa.array`` or ``pa.scalar`` on Python values, or ``as_py`` on a
timestamp: each imports pandas, which costs more than checking a million rows.

Without a contract, the columns already in the warehouse table are the contract: a value
that does not fit its column's type fails the load with the file and line (dlt would
otherwise add a ``<column>__v_text`` variant column), and a batch that shares no column
with the table is refused.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from opsloop.errors import OpsloopError
from opsloop_dlt.naming import normalize
from opsloop_dlt.settings import quote

if TYPE_CHECKING:
    from opsloop.interfaces import DataContract

#: dlt data types -> DuckDB types the checker casts to.
DUCKDB_TYPES = {
    "double": "DOUBLE",
    "bigint": "BIGINT",
    "text": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "time": "TIME",
    "decimal": "DECIMAL(38, 9)",
    "json": "VARCHAR",
}

#: Keys of checked batches kept as Arrow (not yet in DuckDB's ``seen`` table) at most.
PENDING_KEYS_MAX = 500_000

#: The suffix of a source's quarantine table: ``<table>_quarantine``.
QUARANTINE_SUFFIX = "_quarantine"
#: Ids of quarantined rows released into the table: ``<table>_quarantine_released``.
RELEASED_SUFFIX = "_quarantine_released"

QUARANTINE_SCHEMA = pa.schema(
    [
        ("qid", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
        ("rules", pa.string()),
        ("row", pa.string()),
        ("contract", pa.string()),
    ]
)


def quarantine_table(table: str) -> str:
    return f"{table}{QUARANTINE_SUFFIX}"


def released_table(table: str) -> str:
    return f"{table}{RELEASED_SUFFIX}"


def _row_numbers(n: int) -> pa.Array:
    """0 .. n-1 as int64, from a numpy buffer: ``pa.array`` would import pandas (0.3 s)."""
    import numpy as np

    return pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(np.arange(n, dtype=np.int64))])


def _all_false(n: int) -> pa.ChunkedArray:
    """``n`` FALSE values, without ``pa.array`` (which would import pandas)."""
    bits = pa.py_buffer(bytes((n + 7) // 8))
    return pa.chunked_array([pa.Array.from_buffers(pa.bool_(), n, [None, bits])])


def _ascending(keys: pa.ChunkedArray) -> bool:
    """Whether ``keys`` has no null and only grows (then no key repeats): a cheap test that
    spares the distinct count for the usual id or timestamp key."""
    import pyarrow.compute as pc

    if len(keys) < 2 or keys.null_count:
        return False
    try:
        return bool(pc.all(pc.greater(keys[1:], keys[:-1])).as_py())
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False


def duckdb_type(kind: str, where: str) -> str:
    try:
        return DUCKDB_TYPES[kind]
    except KeyError:
        raise OpsloopError(
            f"{where}: unknown column type '{kind}'; use one of {', '.join(DUCKDB_TYPES)}"
        ) from None


def _arrow_kind(dtype: pa.DataType) -> str | None:
    """The dlt data type an Arrow type already is, if it needs no cast."""
    if pa.types.is_floating(dtype):
        return "double"
    if pa.types.is_integer(dtype):
        return "bigint"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "text"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_timestamp(dtype) and dtype.tz is not None:
        return "timestamp"
    return None


#: A rule as the contract settings write it: ``"col" IS NOT NULL``, ``"col" >= 0.0``,
#: ``"col" <= 10.0``, ``"col" IN ('a', 'b')``.
_COLUMN_RULE = re.compile(
    r'^"(?P<column>(?:[^"]|"")+)" (?P<op>IS NOT NULL|>=|<=|IN)(?P<rest>.*)$', re.S
)


@dataclass(frozen=True)
class ColumnRule:
    """A rule on one column that pyarrow checks without DuckDB: its column, its operator
    and its literal (the bound of ``>=`` and ``<=``, the values of ``IN``)."""

    column: str
    op: str
    bound: float | None = None
    values: pa.Array | None = None


def _bound(bound: float, op: str, kind: pa.DataType) -> pa.Scalar | None:
    """``bound`` as a scalar of the column's kind, built without ``pa.scalar`` (which
    imports pandas). On an integer column ``>= 0.5`` is ``>= 1`` and ``<= 2.5`` is ``<= 2``,
    so the comparison is exact as in DuckDB; None when it does not fit in an int64."""
    import struct

    if pa.types.is_floating(kind):
        data, dtype = struct.pack("<d", bound), pa.float64()
    else:
        whole = math.ceil(bound) if op == ">=" else math.floor(bound)
        if not -(2**63) <= whole < 2**63:
            return None
        data, dtype = struct.pack("<q", whole), pa.int64()
    return pa.Array.from_buffers(dtype, 1, [None, pa.py_buffer(data)])[0]


@dataclass
class Drift:
    """Schema changes seen during one load."""

    new_columns: set[str] = field(default_factory=set)
    missing_columns: set[str] = field(default_factory=set)
    discarded_values: Counter[str] = field(default_factory=Counter)

    @property
    def empty(self) -> bool:
        return not (self.new_columns or self.missing_columns or self.discarded_values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "new_columns": sorted(self.new_columns),
            "missing_columns": sorted(self.missing_columns),
            "discarded_values": dict(self.discarded_values),
        }


@dataclass
class Outcome:
    """What the checker saw over a whole load."""

    checked: int = 0
    quarantined: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    drift: Drift = field(default_factory=Drift)
    newest: dict[str, Any] = field(default_factory=dict)  # freshness column -> max value


class BatchChecker:
    """Checks Arrow batches against a contract (or the table's columns); splits good from bad.

    ``table_columns`` are the columns (name -> dlt type) the warehouse table has now;
    ``existing_keys`` an Arrow table of key values already loaded (for ``unique``).
    """

    def __init__(
        self,
        source: str,
        contract: DataContract | None,
        table_columns: Mapping[str, str] | None = None,
        existing_keys: pa.Table | None = None,
    ) -> None:
        import duckdb

        self.source = source
        self.contract = contract
        self.outcome = Outcome()
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")  # quarantined timestamps read back in UTC
        self.table_columns = {
            k: v for k, v in (table_columns or {}).items() if not k.startswith("_dlt_")
        }
        if contract is not None:
            where = f"contract '{contract.name}'"
            self.declared = {normalize(c): t for c, t in contract.columns.items()}
            for kind in self.declared.values():
                duckdb_type(kind, where)
            self.key = [normalize(c) for c in contract.unique]
        else:
            self.declared = {c: t for c, t in self.table_columns.items() if t in DUCKDB_TYPES}
            self.key = []
        self._key_range: tuple[Any, Any] | None = None
        # keys of checked batches not yet in ``seen``: inserted only when a lookup needs them
        # (keys that only grow never do), so a load of fresh ids costs no DuckDB insert
        self._pending_keys: list[pa.Table] = []
        self._column_rules: dict[str, ColumnRule | None] = {}
        if self.key:
            kind = self.declared.get(self.key[0], "text") if len(self.key) == 1 else "text"
            self.con.execute(f"CREATE TABLE seen (k {DUCKDB_TYPES.get(kind, 'VARCHAR')})")
            if existing_keys is not None and existing_keys.num_rows:
                self.con.register("existing", existing_keys)
                self.con.execute(
                    f"INSERT INTO seen SELECT {self._key_expr('existing')} FROM existing"
                )
                self.con.unregister("existing")
                (row,) = self.con.execute("SELECT min(k), max(k) FROM seen").fetchall()
                if row[0] is not None:
                    self._key_range = (row[0], row[1])

    # ------------------------------------------------------------------ public
    def check(
        self, batch: pa.Table | pa.RecordBatch, where: str, first_line: int | None = None
    ) -> tuple[pa.Table, pa.Table | None]:
        """The good rows (cast to the declared types) and the quarantine rows of ``batch``.

        ``first_line`` is the line (or row) number of the batch's first row in ``where``.
        """
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        batch = batch.rename_columns([normalize(c) for c in batch.column_names])
        self.outcome.checked += batch.num_rows
        if batch.num_rows == 0:
            return batch, None
        batch = self._drift(batch, where)
        if not self.declared and not self.key and self.contract is None:
            self._learn(batch)
            return batch, None
        return self._split(batch, where, first_line or 1)

    def close(self) -> None:
        self.con.close()

    # ----------------------------------------------------------------- drift
    def _drift(self, batch: pa.Table, where: str) -> pa.Table:
        known = self.declared or self.table_columns
        if not known:
            return batch
        names = batch.column_names
        new = [c for c in names if c not in known and not c.startswith("_dlt_")]
        missing = [c for c in known if c not in names]
        drift = self.outcome.drift
        if self.contract is None:
            if new and len(new) == len([c for c in names if not c.startswith("_dlt_")]):
                raise OpsloopError(
                    f"source '{self.source}': {where} shares no column with the table "
                    f"(it has {', '.join(new[:5])}; the table has {', '.join(list(known)[:5])}); "
                    "is it the right file? Declare a contract to load it on purpose"
                )
            drift.new_columns |= set(new)
            drift.missing_columns |= set(missing)
            return batch
        mode = self.contract.schema_changes
        if new:
            if mode == "freeze":
                raise OpsloopError(
                    f"source '{self.source}': {where} has column(s) {', '.join(new)} that "
                    f"contract '{self.contract.name}' does not declare (schema_changes = "
                    "'freeze'); add them to the contract or change the mode"
                )
            drift.new_columns |= set(new)
            if mode == "discard_value":
                batch = batch.drop_columns(new)
        if missing:
            drift.missing_columns |= set(missing)
            for column in missing:
                batch = batch.append_column(column, pa.nulls(batch.num_rows))
        return batch

    def _learn(self, batch: pa.Table) -> None:
        """Without a contract or a table, the first batch's types hold for the rest of the run."""
        for column in batch.column_names:
            kind = _arrow_kind(batch.schema.field(column).type)
            if kind and not column.startswith("_dlt_"):
                self.declared.setdefault(column, kind)

    # ----------------------------------------------------------------- values
    def _key_expr(self, alias: str) -> str:
        """The key as one value: the column itself, or its columns joined as text."""
        if len(self.key) == 1:
            return f"{alias}.{quote(self.key[0])}"
        parts = [f"coalesce(CAST({alias}.{quote(c)} AS VARCHAR), '\x00')" for c in self.key]
        return "concat_ws('\x1f', " + ", ".join(parts) + ")"

    def _split(
        self, batch: pa.Table, where: str, first_line: int
    ) -> tuple[pa.Table, pa.Table | None]:
        contract = self.contract
        mode = contract.schema_changes if contract else "freeze"
        discard_values = mode == "discard_value"
        select: list[str] = []
        changed: list[str] = []  # columns whose values the query casts (the rest pass as-is)
        checks: list[tuple[str, str]] = []  # (rule name, SQL that is TRUE when broken)
        for column in batch.column_names:
            q = quote(column)
            kind = self.declared.get(column)
            dtype = batch.schema.field(column).type
            if kind is None or _arrow_kind(dtype) == kind or pa.types.is_null(dtype):
                cast = (
                    f"CAST(b.{q} AS {DUCKDB_TYPES[kind]})"
                    if kind and pa.types.is_null(dtype)
                    else f"b.{q}"
                )
                select.append(f"{cast} AS {q}")
                if cast != f"b.{q}":
                    changed.append(column)
                continue
            changed.append(column)
            target = DUCKDB_TYPES[kind]
            broken = f"(b.{q} IS NOT NULL AND TRY_CAST(b.{q} AS {target}) IS NULL)"
            if kind == "bigint" and pa.types.is_floating(dtype):
                broken = f"({broken} OR b.{q} <> trunc(b.{q}))"
            if discard_values:
                select.append(
                    f"CASE WHEN {broken} THEN NULL ELSE TRY_CAST(b.{q} AS {target}) END AS {q}"
                )
                checks.append((f"~{column}", broken))  # counted, never quarantined
            else:
                select.append(f"TRY_CAST(b.{q} AS {target}) AS {q}")
                checks.append((f"{column}.type", broken))
        if mode == "discard_row" and contract is not None:
            for column in self.outcome.drift.new_columns & set(batch.column_names):
                checks.append((f"{column}.new_column", f"(b.{quote(column)} IS NOT NULL)"))
        rules = dict(contract.rules) if contract else {}
        late: list[tuple[str, str]] = [(n, f"(({p}) IS FALSE)") for n, p in rules.items()]
        # flags are never NULL (a NULL would count as FALSE): no fill_null on the Arrow side
        early_flags = [f"coalesce({s}, FALSE) AS __f{i}" for i, (_, s) in enumerate(checks)]
        late_flags = [f"coalesce({s}, FALSE) AS __g{i}" for i, (_, s) in enumerate(late)]
        all_flags = [f"__f{i}" for i in range(len(checks))] + [f"__g{i}" for i in range(len(late))]
        names = [n for n, _ in checks] + [n for n, _ in late]
        key = f", {self._key_expr('c0')} AS __k" if self.key else ""
        # only the flags, the key and the cast columns come back: the other columns of the
        # good rows are the batch's own Arrow buffers, never copied through DuckDB
        wanted = ["__n", *[quote(c) for c in changed], *all_flags, *(["__k"] if self.key else [])]
        sql = (
            f"WITH c0 AS (SELECT {', '.join([*select, 'b.__n', *early_flags])} FROM b), "
            f"c1 AS (SELECT *{key} FROM c0), "
            f"c2 AS (SELECT *{''.join(', ' + f for f in late_flags)} FROM c1) "
            f"SELECT {', '.join(wanted)} FROM c2"
        )
        import pyarrow.compute as pc

        # nothing to cast and only column rules: flags straight from pyarrow (no DuckDB)
        fast = None if checks or changed else self._column_flags(batch, list(rules.items()))
        if fast is not None:
            result = fast
        else:
            batch_n = batch.append_column("__n", _row_numbers(batch.num_rows))
            self.con.register("b", batch_n)
            try:
                result = self.con.sql(sql).to_arrow_table()
            except Exception as exc:  # noqa: BLE001 - a bad rule is the user's to fix
                raise OpsloopError(
                    f"source '{self.source}': cannot check {where} against "
                    f"{'contract ' + repr(contract.name) if contract else 'the table columns'}: "
                    f"{' '.join(str(exc).split())[:300]}"
                ) from None
            finally:
                self.con.unregister("b")
            if not pc.all(pc.equal(result.column("__n"), batch_n.column("__n"))).as_py():
                result = result.sort_by("__n")  # DuckDB keeps insertion order; never assumed
        checked = batch
        for column in changed:
            checked = checked.set_column(
                checked.column_names.index(column), column, result.column(column)
            )
        if mode == "discard_row" and contract is not None:
            dropped = [c for c in self.outcome.drift.new_columns if c in checked.column_names]
            checked = checked.drop_columns(dropped)
        bad_mask = None
        quarantine_flags: list[tuple[str, pa.ChunkedArray]] = []
        for name, flag in zip(names, all_flags, strict=True):
            column = result.column(flag)
            if name.startswith("~"):
                self.outcome.drift.discarded_values[name[1:]] += pc.sum(column).as_py() or 0
                continue
            quarantine_flags.append((name, column))
            bad_mask = column if bad_mask is None else pc.or_(bad_mask, column)
        if self.key:
            column = self._duplicates(result.column("__k"))
            quarantine_flags.append(("unique", column))
            bad_mask = column if bad_mask is None else pc.or_(bad_mask, column)
        if bad_mask is None or not pc.any(bad_mask).as_py():
            self._remember(checked, result)
            return checked, None
        keep = pc.invert(bad_mask)
        good = checked.filter(keep)
        self._remember(good, result.filter(keep))
        bad_rows = result.filter(bad_mask)
        positions = bad_rows.column("__n").to_pylist()
        reasons: list[list[str]] = [[] for _ in positions]
        for name, column in quarantine_flags:
            for i, hit in enumerate(column.filter(bad_mask).to_pylist()):
                if hit:
                    reasons[i].append(name)
                    self.outcome.rules[name] += 1
        raw = self._python_rows(batch.filter(bad_mask))
        if (contract is not None and contract.on_violation == "fail") or contract is None:
            first = positions[0]
            raise OpsloopError(
                f"source '{self.source}': {where} line {first_line + first}: breaks "
                f"{', '.join(reasons[0])}"
                + (
                    f" (contract '{contract.name}' has on_violation = 'fail')"
                    if contract
                    else " (the value does not fit the column's type in the table; fix the "
                    "file, or declare a contract to quarantine such rows)"
                )
            )
        self.outcome.quarantined += len(positions)
        # built by DuckDB from Python lists: pa.table(dict of lists) would import pandas
        quarantine = (
            self.con.sql(
                "SELECT unnest($qid::VARCHAR[]) AS qid, $source::VARCHAR AS source, "
                "unnest($line::BIGINT[]) AS line, unnest($rules::VARCHAR[]) AS rules, "
                "unnest($row::VARCHAR[]) AS row, $contract::VARCHAR AS contract",
                params={
                    "qid": [uuid.uuid4().hex for _ in positions],
                    "source": where,
                    "line": [first_line + p for p in positions],
                    "rules": [", ".join(r) for r in reasons],
                    "row": [json.dumps(r, default=str, sort_keys=True) for r in raw],
                    "contract": contract.name,
                },
            )
            .to_arrow_table()
            .cast(QUARANTINE_SCHEMA)
        )
        return good, quarantine

    def _column_rule(self, sql: str) -> ColumnRule | None:
        """``sql`` as a :class:`ColumnRule` if it is one the contract settings generate (not
        null, min, max, allowed); None for any other predicate (DuckDB evaluates those)."""
        if sql in self._column_rules:
            return self._column_rules[sql]
        rule = None
        match = _COLUMN_RULE.match(sql)
        if match:
            column = match["column"].replace('""', '"')
            op, rest = match["op"], match["rest"]
            try:
                if op == "IS NOT NULL" and not rest:
                    rule = ColumnRule(column, op)
                elif op in (">=", "<=") and rest.startswith(" "):
                    found = self.con.execute(f"SELECT CAST(({rest}) AS DOUBLE)").fetchall()
                    bound = found[0][0] if found else None
                    if isinstance(bound, float) and math.isfinite(bound):
                        rule = ColumnRule(column, op, bound)
                elif op == "IN" and rest.startswith(" (") and rest.endswith(")"):
                    listed = f"SELECT unnest([{rest[2:-1]}]) AS v"
                    values = self.con.sql(listed).to_arrow_table().column(0)
                    if values.null_count == 0 and (
                        pa.types.is_string(values.type) or pa.types.is_integer(values.type)
                    ):
                        rule = ColumnRule(column, op, None, values.combine_chunks())
            except Exception:  # noqa: BLE001 - not a literal DuckDB reads alone: use SQL
                rule = None
        self._column_rules[sql] = rule
        return rule

    def _column_flags(self, batch: pa.Table, rules: list[tuple[str, str]]) -> pa.Table | None:
        """The table the DuckDB check would return (``__n``, one ``__g`` flag per rule,
        ``__k``), computed with pyarrow when every rule is a column rule on a column of a
        type it handles exactly as DuckDB does; None otherwise.

        A flag is TRUE where the rule's predicate is FALSE (NULL passes, as in SQL); a NaN
        passes ``>=`` and fails ``<=``, as DuckDB orders NaN above every number.
        """
        import pyarrow.compute as pc

        if len(self.key) > 1 or (self.key and self.key[0] not in batch.column_names):
            return None
        arrays: dict[str, Any] = {"__n": pa.chunked_array([_row_numbers(batch.num_rows)])}
        for i, (_, sql) in enumerate(rules):
            rule = self._column_rule(sql)
            if rule is None or rule.column not in batch.column_names:
                return None
            values = batch.column(rule.column)
            kind = values.type
            numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
            if rule.op == "IS NOT NULL":
                flag = pc.is_null(values)
            elif rule.op in (">=", "<=") and numeric and rule.bound is not None:
                bound = _bound(rule.bound, rule.op, kind)
                if bound is None:
                    return None
                holds = (
                    pc.greater_equal(values, bound)
                    if rule.op == ">="
                    else pc.less_equal(values, bound)
                )
                if rule.op == ">=" and pa.types.is_floating(kind):
                    holds = pc.or_(holds, pc.is_nan(values))
                flag = pc.and_kleene(pc.is_valid(values), pc.invert(holds))
            elif (
                rule.op == "IN"
                and rule.values is not None
                and (
                    (pa.types.is_string(kind) and pa.types.is_string(rule.values.type))
                    or (pa.types.is_integer(kind) and pa.types.is_integer(rule.values.type))
                )
            ):
                value_set = rule.values.cast(kind)
                inside = pc.is_in(values, value_set=value_set)
                flag = pc.and_kleene(pc.is_valid(values), pc.invert(inside))
            else:
                return None
            if flag.null_count:
                return None  # never: every flag above is TRUE or FALSE
            arrays[f"__g{i}"] = flag
        if self.key:
            arrays["__k"] = batch.column(self.key[0])
        return pa.Table.from_arrays(list(arrays.values()), names=list(arrays))

    def _python_rows(self, rows: pa.Table) -> list[dict[str, Any]]:
        """``rows`` as Python dicts, converted by DuckDB (timestamps in UTC): pyarrow's own
        conversion of a timestamp imports pandas, which costs more than a whole batch."""
        self.con.register("bad_rows", rows)
        try:
            relation = self.con.sql("SELECT * FROM bad_rows")
            names = relation.columns
            return [dict(zip(names, values, strict=True)) for values in relation.fetchall()]
        finally:
            self.con.unregister("bad_rows")

    def _duplicates(self, keys: pa.ChunkedArray) -> pa.ChunkedArray:
        """TRUE where a (non-null) key was loaded before or repeats earlier in the batch.

        Fast paths first: no repeat within the batch (a distinct count) and a key range
        outside the range seen so far (ids and timestamps that only grow) need no lookup.
        """
        import pyarrow.compute as pc

        present = len(keys) - keys.null_count
        repeats = not _ascending(keys) and pc.count_distinct(keys).as_py() < present
        overlap = self._key_range is not None and present > 0
        if overlap and self._key_range is not None:
            low, high = pc.min_max(keys).values()
            lo, hi = low.as_py(), high.as_py()
            seen_lo, seen_hi = self._key_range
            try:
                overlap = not (lo > seen_hi or hi < seen_lo)
            except TypeError:
                overlap = True
        if not repeats and not overlap:
            return _all_false(len(keys))

        self._flush_keys()
        numbers = pa.chunked_array([_row_numbers(len(keys))])
        table = pa.Table.from_arrays([keys, numbers], names=["k", "n"])
        self.con.register("kt", table)
        try:
            flags = self.con.sql(
                "SELECT k IS NOT NULL AND (k IN (SELECT k FROM seen) OR "
                "row_number() OVER (PARTITION BY k ORDER BY n) > 1) AS d FROM kt ORDER BY n"
            ).to_arrow_table()
        finally:
            self.con.unregister("kt")
        return flags.column("d")

    def _flush_keys(self) -> None:
        """Insert the keys remembered since the last lookup into ``seen``."""
        if not self._pending_keys:
            return
        keys = pa.concat_tables(self._pending_keys)
        self._pending_keys = []
        self.con.register("k", keys)
        try:
            self.con.execute("INSERT INTO seen SELECT __k FROM k WHERE __k IS NOT NULL")
        finally:
            self.con.unregister("k")

    def _remember(self, good: pa.Table, with_key: pa.Table) -> None:
        if self.key and good.num_rows:
            import pyarrow.compute as pc

            keys = with_key.select(["__k"])
            self._pending_keys.append(keys)
            # a key column may share its buffer with a batch's other columns (pandas blocks):
            # copy the keys into DuckDB now and then, so no batch stays alive for its keys
            if sum(t.num_rows for t in self._pending_keys) >= PENDING_KEYS_MAX:
                self._flush_keys()
            low, high = pc.min_max(keys.column("__k")).values()
            if low.as_py() is not None:
                lo, hi = low.as_py(), high.as_py()
                if self._key_range is None:
                    self._key_range = (lo, hi)
                else:
                    try:
                        self._key_range = (min(lo, self._key_range[0]), max(hi, self._key_range[1]))
                    except TypeError:
                        self._key_range = (lo, hi)
        if self.contract is not None and good.num_rows:
            import pyarrow.compute as pc

            for column in self.contract.freshness:
                name = normalize(column)
                if name in good.column_names:
                    newest = pc.max(good.column(name)).as_py()
                    old = self.outcome.newest.get(name)
                    if newest is not None and (old is None or newest > old):
                        self.outcome.newest[name] = newest

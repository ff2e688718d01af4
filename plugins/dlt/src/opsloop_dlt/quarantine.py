"""Quarantined rows: list them, show them, release them into the table after a fix.

A source's quarantine table ``<dataset>.<table>_quarantine`` is written by the same load
package as the good rows. Releasing re-checks the rows against the source's contract as it
is now: rows that pass are loaded into the table and their ids written to
``<table>_quarantine_released`` by one dlt load package (all or nothing, so a crash never
loads a row twice); rows that still fail stay where they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop_dlt.contracts import quarantine_table, released_table
from opsloop_dlt.pipeline import dataset_name, table_name
from opsloop_dlt.settings import quote

if TYPE_CHECKING:
    import pyarrow as pa

    from opsloop.interfaces import SourceSpec
    from opsloop.project import Project


@dataclass
class QuarantinedRow:
    qid: str
    source: str
    line: int | None
    rules: str
    row: dict[str, Any]
    load_id: str


@dataclass
class ReleaseResult:
    released: int
    still_failing: int
    load_ids: list[str] = field(default_factory=list)
    rules: dict[str, int] = field(default_factory=dict)


def _exists(con: Any, dataset: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [dataset, table],
    ).fetchone()
    return bool(row and row[0])


def pending(
    project: Project, source: SourceSpec, limit: int | None = None, qids: list[str] | None = None
) -> list[QuarantinedRow]:
    """The quarantined rows of ``source`` not yet released (completed loads only)."""
    if not project.warehouse_path.exists():
        return []
    import duckdb

    dataset, table = dataset_name(source.dataset), table_name(source.name)
    qt, rt = quarantine_table(table), released_table(table)
    with duckdb.connect(str(project.warehouse_path), read_only=True) as con:
        if not _exists(con, dataset, qt):
            return []
        done = f"(SELECT load_id FROM {quote(dataset)}._dlt_loads WHERE status = 0)"
        sql = (
            "SELECT qid, source, line, rules, row, _dlt_load_id "
            f"FROM {quote(dataset)}.{quote(qt)} WHERE _dlt_load_id IN {done}"
        )
        if _exists(con, dataset, rt):
            sql += (
                f" AND qid NOT IN (SELECT qid FROM {quote(dataset)}.{quote(rt)} "
                f"WHERE _dlt_load_id IN {done})"
            )
        params: list[Any] = []
        if qids:
            sql += f" AND qid IN ({', '.join('?' for _ in qids)})"
            params += qids
        sql += " ORDER BY _dlt_load_id, source, line"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = con.execute(sql, params).fetchall()
    return [QuarantinedRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]


def _to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as an Arrow table; a column whose values differ in type is kept as text."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, [])
    for row in rows:
        for key, values in columns.items():
            values.append(row.get(key))
    arrays = {}
    for key, values in columns.items():
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            values = [None if v is None else str(v) for v in values]
        arrays[key] = pa.array(values)
    return pa.table(arrays)


def release(project: Project, source: SourceSpec, qids: list[str] | None = None) -> ReleaseResult:
    """Re-check quarantined rows against the current contract; load those that now pass."""
    from opsloop_dlt.contracts import BatchChecker
    from opsloop_dlt.pipeline import (
        add_side_tables,
        current_columns,
        current_load_id,
        existing_keys,
        open_pipeline,
        restored_state,
        run,
        source_contract,
        with_load_id,
    )

    contract = source_contract(project, source)
    if contract is None:
        raise OpsloopError(
            f"source '{source.name}' names no contract, so it has no quarantine to release"
        )
    rows = pending(project, source, qids=qids)
    if qids:
        missing = sorted(set(qids) - {r.qid for r in rows})
        if missing:
            raise OpsloopError(
                f"source '{source.name}': no pending quarantined row with id {missing[0]}; "
                "see `opsloop ingest quarantine show`"
            )
    if not rows:
        return ReleaseResult(0, 0)
    import dlt
    import pyarrow as pa

    table = table_name(source.name)
    pipeline = open_pipeline(project, source)
    restored_state(project, pipeline, source)
    checker = BatchChecker(
        source.name,
        contract,
        {**current_columns(pipeline, table), **(source.options.get("columns") or {})},
        existing_keys(project, pipeline.dataset_name, table, list(contract.unique))
        if source.write_disposition == "append"
        else None,
    )
    good, bad = checker.check(_to_arrow([r.row for r in rows]), "quarantine", 1)
    failing = set() if bad is None else {int(line) - 1 for line in bad.column("line").to_pylist()}
    released = [r.qid for i, r in enumerate(rows) if i not in failing]
    disposition = "merge" if source.write_disposition == "merge" else "append"

    write: Any = (
        {"disposition": "merge", "strategy": "delete-insert"}
        if disposition == "merge"
        else "append"
    )

    def resources() -> Any:
        @dlt.resource(  # type: ignore[misc]
            name=table, write_disposition=write, primary_key=list(source.primary_key)
        )
        def rows_out() -> Any:
            load_id = current_load_id()
            if good.num_rows:
                yield with_load_id(good, load_id)
            if released:
                marks = pa.table({"qid": pa.array(released, pa.string())})
                yield dlt.mark.with_table_name(with_load_id(marks, load_id), released_table(table))

        return add_side_tables(rows_out, table)

    try:
        result = run(project, pipeline, source, resources, table) if released else None
    finally:
        checker.close()
    outcome = ReleaseResult(
        released=len(released),
        still_failing=len(failing),
        load_ids=result.load_ids if result else [],
        rules=dict(checker.outcome.rules),
    )
    project.audit.append(
        "ingest.quarantine.release",
        f"{pipeline.dataset_name}.{table}",
        after={
            "released": outcome.released,
            "still_failing": outcome.still_failing,
            "load_ids": outcome.load_ids,
            "contract": contract.name,
        },
    )
    return outcome

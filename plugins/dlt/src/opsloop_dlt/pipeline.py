"""One dlt pipeline per opsloop source, into the project's DuckDB warehouse, all or nothing.

The pipeline's working folder lives under the project home (never ~/.dlt or the cwd). The
warehouse is the source of truth: when a run fails, or a crashed run left packages behind,
the rows of the unfinished packages are deleted and the working folder is wiped, so the
next run restores dlt's state from the last load that completed and reads those files
again. Rows of an unfinished package are never visible to ``read_dataset`` either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop_dlt import _env

_env.configure_dlt()

import dlt  # noqa: E402  (after telemetry is off)
from dlt.pipeline.exceptions import PipelineStepFailed  # noqa: E402

from opsloop.errors import OpsloopError  # noqa: E402
from opsloop.records import LoadRecord, utcnow  # noqa: E402
from opsloop.redact import redact_text  # noqa: E402
from opsloop_dlt.naming import normalize  # noqa: E402

if TYPE_CHECKING:
    import pyarrow as pa

    from opsloop.interfaces import DataContract, SourceSpec
    from opsloop.project import Project
    from opsloop_dlt.contracts import BatchChecker


#: DuckDB's memory limit while dlt loads into the warehouse.
DUCKDB_MEMORY_LIMIT = "512MB"


class SourceDataError(Exception):
    """Raised inside extraction when one input (a file, a table) cannot be read."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def table_name(name: str) -> str:
    """The warehouse table dlt creates for ``name`` (its snake_case naming convention)."""
    return normalize(name)


def dataset_name(name: str) -> str:
    """The warehouse schema dlt creates for the dataset ``name``."""
    return normalize(name)


def pipeline_name(source: SourceSpec) -> str:
    """``opsloop_<source>``, in dlt's naming (it is also the dlt schema and source name)."""
    return f"opsloop_{normalize(source.name)}"


def write_disposition(source: SourceSpec) -> Any:
    """dlt's write disposition; merge is ``delete-insert`` (DuckDB has no ``upsert``)."""
    if source.write_disposition == "merge":
        if not source.primary_key:
            raise OpsloopError(
                f"source '{source.name}': write_disposition 'merge' needs primary_key "
                "(the columns that identify a row)"
            )
        return {"disposition": "merge", "strategy": "delete-insert"}
    if source.write_disposition not in ("append", "replace"):
        raise OpsloopError(
            f"source '{source.name}': unknown write_disposition '{source.write_disposition}'; "
            "use append, replace or merge"
        )
    return source.write_disposition


def column_hints(source: SourceSpec) -> dict[str, dict[str, Any]] | None:
    """``options["columns"]`` ({column: dlt data type}) as dlt column hints."""
    columns = source.options.get("columns") or {}
    return {name: {"data_type": kind} for name, kind in columns.items()} or None


@dataclass
class RunResult:
    load_ids: list[str]
    rows: int
    quarantined: int = 0


def source_contract(project: Project, source: SourceSpec) -> DataContract | None:
    """The contract the source names, or None."""
    if not source.contract:
        return None
    from opsloop import ingest

    return ingest.get_contract(project, source.contract)


def dlt_schema_contract(contract: DataContract | None) -> dict[str, str] | None:
    """dlt's schema contract backing ours: no variant columns, new columns only on evolve.

    The checker has already applied the mode to each batch (quarantined or dropped what the
    mode refuses); this makes dlt refuse anything that slipped past it.
    """
    if contract is None:
        return None
    columns = "evolve" if contract.schema_changes == "evolve" else "freeze"
    return {"tables": "evolve", "columns": columns, "data_type": "freeze"}


def current_columns(pipeline: Any, table: str) -> dict[str, str]:
    """The columns (name -> dlt type) the table has in the pipeline's schema now."""
    try:
        schema = pipeline.default_schema
    except Exception:  # noqa: BLE001 - no schema yet: a first load
        return {}
    if table not in schema.tables:
        return {}
    return {
        name: str(col["data_type"])
        for name, col in schema.get_table_columns(table).items()
        if col.get("data_type")
    }


def existing_keys(project: Project, dataset: str, table: str, key: list[str]) -> pa.Table | None:
    """Key values already in the warehouse table (completed loads only), for ``unique``."""
    if not key or not project.warehouse_path.exists():
        return None
    import duckdb

    from opsloop_dlt.settings import quote

    cols = ", ".join(quote(normalize(c)) for c in key)
    try:
        with duckdb.connect(str(project.warehouse_path), read_only=True) as con:
            return con.sql(
                f"SELECT {cols} FROM {quote(dataset)}.{quote(table)} WHERE _dlt_load_id IN "
                f"(SELECT load_id FROM {quote(dataset)}._dlt_loads WHERE status = 0)"
            ).to_arrow_table()
    except duckdb.Error:
        return None  # no table yet


def add_side_tables(resource: Any, table: str) -> Any:
    """Own hints for the quarantine tables the resource also writes (not the table's key,
    disposition or reflected columns): append-only, fixed columns."""
    from opsloop_dlt.contracts import QUARANTINE_SCHEMA, quarantine_table, released_table

    text = {"data_type": "text", "nullable": True}
    columns = {f.name: dict(text) for f in QUARANTINE_SCHEMA}
    columns["line"] = {"data_type": "bigint", "nullable": True}
    for name, cols in (
        (quarantine_table(table), columns),
        (released_table(table), {"qid": dict(text)}),
    ):
        # a variant starts as a copy of the resource's hints: empty its columns first
        resource.apply_hints(table_name=name, columns={}, create_table_variant=True)
        resource.apply_hints(
            table_name=name,
            write_disposition="append",
            columns=cols,
            primary_key=[],
            merge_key=[],
            schema_contract={"tables": "evolve", "columns": "evolve", "data_type": "evolve"},
            create_table_variant=True,
        )
    return resource


#: dlt's lineage column: the load id of the package that wrote each row.
LOAD_ID_COLUMN = "_dlt_load_id"


def current_load_id() -> str:
    """The id of the load package dlt is extracting now (call inside a resource)."""
    return str(dlt.current.load_package_state()["load_id"])


def with_load_id(item: pa.Table, load_id: str) -> pa.Table:
    """``item`` with a ``_dlt_load_id`` column holding ``load_id`` on every row.

    The column is dictionary-encoded (one value, int8 zero indices), as dlt itself writes
    it, but built from raw buffers: dlt's own helper calls ``pa.array``, whose first call in
    a process imports pandas (about 0.3 s, a tenth of a million-row load).
    """
    import struct

    import pyarrow as pa

    data = load_id.encode()
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))  # one string: int32 [0, len]
    dictionary = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])
    zeros = pa.py_buffer(bytes(item.num_rows))
    indices = pa.Array.from_buffers(pa.int8(), item.num_rows, [None, zeros])
    column = pa.DictionaryArray.from_arrays(indices, dictionary)
    field = pa.field(LOAD_ID_COLUMN, column.type, nullable=False)
    if LOAD_ID_COLUMN in item.column_names:
        return item.set_column(item.column_names.index(LOAD_ID_COLUMN), field, column)
    return item.append_column(field, column)


def checked_batches(
    batches: Iterable[tuple[pa.Table, str, int]], checker: BatchChecker, table: str
) -> Iterator[Any]:
    """Good rows for ``table``, broken rows marked for its quarantine table; both carry the
    load id (lineage)."""
    return stamped(checks(batches, checker), table)


def checks(
    batches: Iterable[tuple[pa.Table, str, int]], checker: BatchChecker
) -> Iterator[tuple[pa.Table, pa.Table | None]]:
    """(good rows, quarantine rows or None) of each batch."""
    for batch, where, line in batches:
        yield checker.check(batch, where, line)


def stamped(checked: Iterable[tuple[pa.Table, pa.Table | None]], table: str) -> Iterator[Any]:
    """Checked batches as dlt items (call inside a resource): good rows for ``table``, broken
    rows marked for its quarantine table, both with the package's load id."""
    from opsloop_dlt.contracts import quarantine_table

    qtable = quarantine_table(table)
    load_id = current_load_id()
    for good, bad in checked:
        if good.num_rows:
            yield with_load_id(good, load_id)
        if bad is not None:
            yield dlt.mark.with_table_name(with_load_id(bad, load_id), qtable)


def report(
    project: Project,
    source: SourceSpec,
    dataset: str,
    table: str,
    checker: BatchChecker,
    load_ids: list[str],
) -> None:
    """Signals (and audit entries) for quarantined rows, schema drift and stale data."""
    from opsloop.records import Signal
    from opsloop_dlt.contracts import quarantine_table

    outcome, contract = checker.outcome, checker.contract
    subject = f"{dataset}.{table}"
    name = contract.name if contract else None
    base = {"source": source.name, "contract": name, "load_ids": load_ids}
    if outcome.quarantined:
        rules = dict(outcome.rules.most_common())
        listed = ", ".join(f"{r} {n}" for r, n in rules.items())
        project.emit(
            Signal(
                source="dlt.contract",
                type="contract_violation",
                severity="warning",
                subject=subject,
                summary=(
                    f"{outcome.quarantined} of {outcome.checked} row(s) of source "
                    f"'{source.name}' broke contract '{name}' and were quarantined ({listed})"
                ),
                value=float(outcome.quarantined),
                data={**base, "rules": rules, "quarantine": f"{dataset}.{quarantine_table(table)}"},
            )
        )
        project.audit.append(
            "ingest.quarantine",
            subject,
            after={"rows": outcome.quarantined, "rules": rules, "load_ids": load_ids},
        )
    if not outcome.drift.empty:
        drift = outcome.drift.to_dict()
        mode = contract.schema_changes if contract else "evolve"
        project.emit(
            Signal(
                source="dlt.contract",
                type="schema_drift",
                severity="warning",
                subject=subject,
                summary=(
                    f"source '{source.name}': schema changed (new: "
                    f"{', '.join(drift['new_columns']) or '-'}; missing: "
                    f"{', '.join(drift['missing_columns']) or '-'}; values discarded: "
                    f"{sum(drift['discarded_values'].values())}); handled as '{mode}'"
                ),
                data={**base, **drift, "mode": mode},
            )
        )
    if contract is not None:
        import datetime as dt

        now = dt.datetime.now(dt.UTC)
        for column, max_age in contract.freshness.items():
            newest = outcome.newest.get(normalize(column))
            if newest is None:
                continue
            if isinstance(newest, dt.datetime):
                stamp = newest if newest.tzinfo else newest.replace(tzinfo=dt.UTC)
            else:
                stamp = dt.datetime.combine(newest, dt.time(), dt.UTC)
            age = (now - stamp).total_seconds()
            if age > max_age:
                project.emit(
                    Signal(
                        source="dlt.contract",
                        type="contract_violation",
                        severity="warning",
                        subject=subject,
                        summary=(
                            f"source '{source.name}': newest {column} is {age / 3600:.1f} h "
                            f"old, contract '{name}' allows {max_age / 3600:.1f} h"
                        ),
                        value=age,
                        threshold=max_age,
                        data={**base, "rules": {f"{column}.freshness": 1}},
                    )
                )


def open_pipeline(project: Project, source: SourceSpec) -> Any:
    """The source's dlt pipeline, its working folder under ``<home>/dlt``."""
    name = pipeline_name(source)
    pipelines_dir = project.path("dlt", "pipelines")
    pipelines_dir.mkdir(parents=True, exist_ok=True)
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(project.warehouse_path))
    # DuckDB's buffer manager would take up to 80% of RAM while it loads a big package; a
    # cap makes it stream (and spill to its temp folder) instead: loads stay flat in memory
    credentials.global_config = {"memory_limit": DUCKDB_MEMORY_LIMIT}
    destination = dlt.destinations.duckdb(
        credentials=credentials,
        # replace loads into a staging table and swaps in one transaction: never half-empty
        replace_strategy="insert-from-staging",
    )
    pipeline = dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(pipelines_dir),
        destination=destination,
        dataset_name=dataset_name(source.dataset),
    )
    if pipeline.has_pending_data:  # a crashed run left packages: undo them, start clean
        pending = [
            *pipeline.list_extracted_load_packages(),
            *pipeline.list_normalized_load_packages(),
        ]
        discard_loads(project.warehouse_path, pipeline.dataset_name, pending)
        pipeline = pipeline.drop()
    return pipeline


def restored_state(project: Project, pipeline: Any, source: SourceSpec) -> dict[str, Any]:
    """dlt's source state for this pipeline, restored from the warehouse when it is newer."""
    try:
        pipeline.sync_destination()
    except PipelineStepFailed as exc:
        raise translate_error(exc, project.warehouse_path, source.name) from None
    sources = pipeline.state.get("sources", {})
    return dict(sources.get(pipeline.pipeline_name, {}))


def run(
    project: Project,
    pipeline: Any,
    source: SourceSpec,
    resource_factory: Callable[[], Iterable[Any]],
    table: str,
) -> RunResult:
    """Run the pipeline on a dlt source; on failure undo the unfinished package and raise."""
    data = dlt.source(name=pipeline.pipeline_name, max_table_nesting=0)(resource_factory)()
    try:
        with _env.run_settings():
            info = pipeline.run(data)
    except PipelineStepFailed as exc:
        error = translate_error(exc, project.warehouse_path, source.name)
        discard_loads(
            project.warehouse_path,
            pipeline.dataset_name,
            [
                exc.load_id,
                *pipeline.list_extracted_load_packages(),
                *pipeline.list_normalized_load_packages(),
            ],
        )
        pipeline.drop()
        raise error from None
    if info.has_failed_jobs:  # pragma: no cover - dlt raises on failed jobs by default
        discard_loads(project.warehouse_path, pipeline.dataset_name, list(info.loads_ids))
        pipeline.drop()
        raise OpsloopError(f"source '{source.name}': dlt reported failed load jobs; nothing kept")
    from opsloop_dlt.contracts import quarantine_table

    info_n = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    rows = int(info_n.row_counts.get(table, 0)) if info_n else 0
    bad = int(info_n.row_counts.get(quarantine_table(table), 0)) if info_n else 0
    return RunResult(list(info.loads_ids), rows, bad)


def discard_loads(warehouse: Path, dataset: str | None, load_ids: Iterable[str | None]) -> None:
    """Delete the rows of load packages that never completed (not in ``_dlt_loads``)."""
    ids = sorted({i for i in load_ids if i})
    if not ids or not dataset or not warehouse.exists():
        return
    import duckdb

    try:
        con = duckdb.connect(str(warehouse))
    except duckdb.Error:
        return  # locked or unreadable: the rows stay invisible to read_dataset anyway
    try:
        tables = con.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = ? AND column_name = '_dlt_load_id'",
            [dataset],
        ).fetchall()
        done: set[str] = set()
        has_loads = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = '_dlt_loads'",
            [dataset],
        ).fetchone()
        if has_loads and has_loads[0]:
            done = {
                r[0]
                for r in con.execute(f'SELECT load_id FROM "{dataset}"."_dlt_loads"').fetchall()
            }
        unfinished = [i for i in ids if i not in done]
        if not unfinished:
            return
        marks = ", ".join("?" for _ in unfinished)
        for (name,) in tables:
            con.execute(
                f'DELETE FROM "{dataset}"."{name}" WHERE _dlt_load_id IN ({marks})', unfinished
            )
    finally:
        con.close()


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (dlt's ``.exception``, causes and contexts)."""
    seen: list[BaseException] = []
    queue: list[BaseException | None] = [exc]
    while queue:
        item = queue.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        queue += [getattr(item, "exception", None), item.__cause__, item.__context__]
    return seen


def translate_error(exc: PipelineStepFailed, warehouse: Path, source: str) -> OpsloopError:
    """One line for the user: which input was bad, or why the warehouse refused the load."""
    causes = _causes(exc)
    label = f"source '{source}': " if source else ""
    for cause in causes:
        if isinstance(cause, OpsloopError):
            return cause
        if isinstance(cause, SourceDataError):
            return OpsloopError(
                f"{label}cannot read {cause.where}: {cause.reason}; fix or remove it and run "
                "again (nothing was loaded)"
            )
    root = causes[-1]
    text = " ".join(str(root).split()) or type(root).__name__
    if "lock" in text.lower() and "conflicting" in text.lower():
        return OpsloopError(
            f"{label}the warehouse {warehouse} is in use by another process; stop it "
            "(a server, a notebook) and run again"
        )
    if len(text) > 300:
        text = text[:297] + "..."
    return OpsloopError(
        f"{label}dlt failed at step '{exc.step}': {type(root).__name__}: {redact_text(text)} "
        "(nothing was loaded)"
    )


def make_record(
    source: SourceSpec, pipeline: Any, project: Project, table: str, result: RunResult, started: str
) -> LoadRecord:
    """The LoadRecord of one run; ``empty`` when no package was loaded."""
    return LoadRecord(
        source=source.name,
        pipeline=pipeline.pipeline_name,
        dataset=pipeline.dataset_name,
        destination=f"duckdb:{project.warehouse_path}",
        load_ids=result.load_ids,
        tables={table: result.rows}
        | ({f"{table}_quarantine": result.quarantined} if result.quarantined else {}),
        status="loaded" if result.load_ids else "empty",
        started_at=started,
        finished_at=utcnow(),
    )


__all__ = [
    "RunResult",
    "SourceDataError",
    "checked_batches",
    "checks",
    "current_columns",
    "current_load_id",
    "dataset_name",
    "discard_loads",
    "dlt_schema_contract",
    "existing_keys",
    "make_record",
    "open_pipeline",
    "report",
    "restored_state",
    "run",
    "source_contract",
    "stamped",
    "table_name",
    "translate_error",
    "utcnow",
    "with_load_id",
]

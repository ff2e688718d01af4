"""Load a folder of landing CSV files into a warehouse table, reading only new or changed files."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

from opsloop.errors import OpsloopError
from opsloop_dlt.files import LandingFile, list_files, plan_load
from opsloop_dlt.pipeline import (
    RunResult,
    SourceDataError,
    add_side_tables,
    checks,
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
    stamped,
    table_name,
    utcnow,
    write_disposition,
)

if TYPE_CHECKING:
    from opsloop.interfaces import SourceSpec
    from opsloop.project import Project
    from opsloop.records import LoadRecord

#: Where the fingerprints of loaded files live in the dlt source state.
STATE_KEY = "files"


def landing_folder(project: Project, source: SourceSpec) -> Path:
    """``options["path"]``, relative paths resolved against the project root."""
    raw = source.options.get("path")
    if not raw:
        raise OpsloopError(
            f"source '{source.name}': a landing_files source needs options['path'] (a folder)"
        )
    folder = Path(str(raw)).expanduser()
    return folder if folder.is_absolute() else (project.root / folder).resolve()


def load_landing_files(project: Project, source: SourceSpec, chunk_rows: int) -> LoadRecord:
    """Load the new and changed files of ``source``'s folder; an ``empty`` record if none."""
    started = utcnow()
    folder = landing_folder(project, source)
    files = list_files(folder, str(source.options.get("glob") or "*.csv"))
    disposition = write_disposition(source)
    table = table_name(source.name)
    delimiter = str(source.options.get("delimiter") or ",")
    encoding = str(source.options.get("encoding") or "utf-8")

    fmt = file_format(source)

    import dlt

    from opsloop_dlt.contracts import BatchChecker
    from opsloop_dlt.prefetch import Prefetch

    pipeline = open_pipeline(project, source)
    state = restored_state(project, pipeline, source)
    plan = plan_load(files, state.get(STATE_KEY, {}), source.write_disposition)
    if plan.empty:
        return make_record(source, pipeline, project, table, RunResult([], 0), started)
    contract = source_contract(project, source)
    checker = BatchChecker(
        source.name,
        contract,
        {**current_columns(pipeline, table), **(source.options.get("columns") or {})},
        existing_keys(project, pipeline.dataset_name, table, list(contract.unique))
        if contract and source.write_disposition == "append"
        else None,
    )

    def batches() -> Iterator[tuple[Any, str, int]]:
        for item in plan.to_load:
            for batch, line in read_file(item, fmt, delimiter, encoding, chunk_rows):
                yield batch, str(item.path), line

    def resources() -> Any:
        @dlt.resource(
            name=table,
            write_disposition=disposition,
            primary_key=list(source.primary_key) or None,
            columns=column_hints(source),
            schema_contract=dlt_schema_contract(contract),  # type: ignore[arg-type]
        )
        def rows() -> Iterator[Any]:
            yield from stamped(ahead, table)
            # what pyarrow's allocator kept from the batches goes back before DuckDB loads
            import pyarrow as pa

            pa.default_memory_pool().release_unused()
            # committed with the load package, so a failed load leaves the old fingerprints
            dlt.current.source_state()[STATE_KEY] = dict(plan.after)

        return add_side_tables(rows, table)

    # files are read and checked one batch ahead in a worker, from now on: while dlt starts
    # its run, then while it writes the previous batch (see opsloop_dlt.prefetch)
    import_readers(fmt)
    ahead = Prefetch(checks(batches(), checker))
    try:
        result = run(project, pipeline, source, resources, table)
        report(project, source, pipeline.dataset_name, table, checker, result.load_ids)
    finally:
        ahead.close()
        checker.close()
    return make_record(source, pipeline, project, table, result, started)


def file_format(source: SourceSpec) -> str:
    """``options["format"]``, else from the glob's extension (csv by default)."""
    fmt = source.options.get("format")
    if fmt:
        return str(fmt)
    glob = str(source.options.get("glob") or "*.csv").lower()
    if glob.endswith((".parquet", ".pq")):
        return "parquet"
    if glob.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def import_readers(fmt: str) -> None:
    """Import what reading ``fmt`` and checking it need, here, before a worker thread reads.

    A module being imported in one thread is already in ``sys.modules``, half made, for the
    others: dlt looks there for pandas to tell a DataFrame from other items, and fails on a
    pandas that the worker's first ``read_csv`` is still importing.
    """
    import pyarrow.compute  # the checker's

    if fmt == "parquet":
        import pyarrow.parquet  # noqa: F401
    elif fmt != "jsonl":
        import pandas  # noqa: F401


def read_file(
    item: LandingFile, fmt: str, delimiter: str, encoding: str, chunk_rows: int
) -> Iterator[tuple[pa.Table, int]]:
    """Arrow batches of one file with the line (row, for Parquet) of each batch's first row."""
    if fmt == "parquet":
        yield from read_parquet(item, chunk_rows)
    elif fmt == "jsonl":
        yield from read_jsonl(item, encoding, chunk_rows)
    else:
        yield from read_csv(item, delimiter, encoding, chunk_rows)


def read_csv(
    item: LandingFile, delimiter: str, encoding: str, chunk_rows: int
) -> Iterator[tuple[pa.Table, int]]:
    """Arrow batches of one CSV file, missing values as null; a bad file names itself.

    A row with more fields than the header is an error (pandas would otherwise take the
    first column as an index, or drop the extra fields). Line 1 is the header.
    """
    import pandas as pd
    import pyarrow as pa

    line = 2
    try:
        reader = pd.read_csv(
            item.path, sep=delimiter, encoding=encoding, chunksize=chunk_rows, index_col=False
        )
        with reader:
            while True:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    chunk = next(reader, None)
                if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
                    raise SourceDataError(str(item.path), "a row has more fields than the header")
                if chunk is None:
                    return
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                yield table, line
                line += len(chunk)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SourceDataError(str(item.path), _one_line(exc)) from exc
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise SourceDataError(str(item.path), _one_line(exc)) from exc


def read_parquet(item: LandingFile, chunk_rows: int) -> Iterator[tuple[pa.Table, int]]:
    """Arrow batches of one Parquet file (row numbers from 1), read a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 1
    try:
        with pq.ParquetFile(item.path) as handle:
            for batch in handle.iter_batches(batch_size=chunk_rows):
                yield pa.Table.from_batches([batch]), row
                row += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"{item.path} (near row {row})", _one_line(exc)) from exc


def read_jsonl(item: LandingFile, encoding: str, chunk_rows: int) -> Iterator[tuple[pa.Table, int]]:
    """Arrow batches of one JSON Lines file (one object a line); a bad line is named."""
    import json

    import pyarrow as pa

    line = 1
    rows: list[dict[str, Any]] = []
    try:
        with item.path.open(encoding=encoding) as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise SourceDataError(
                        f"{item.path} line {number}", f"not valid JSON: {exc.msg}"
                    ) from None
                if not isinstance(value, dict):
                    raise SourceDataError(
                        f"{item.path} line {number}", "a line must hold one JSON object"
                    )
                rows.append(value)
                if len(rows) >= chunk_rows:
                    yield pa.Table.from_pylist(rows), line
                    line, rows = number + 1, []
        if rows:
            yield pa.Table.from_pylist(rows), line
    except UnicodeDecodeError as exc:
        raise SourceDataError(str(item.path), _one_line(exc)) from exc
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"{item.path} (lines from {line})", _one_line(exc)) from exc


def _is_missing(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or (type(value).__name__ == "NaTType")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, UnicodeDecodeError):
        text = f"not valid {exc.encoding} text at byte {exc.start}"
    return text or type(exc).__name__

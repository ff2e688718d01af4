"""Load a folder of landing CSV files into a warehouse table, reading only new or changed files."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop_dlt.files import LandingFile, list_files, plan_load
from opsloop_dlt.pipeline import (
    RunResult,
    SourceDataError,
    column_hints,
    make_record,
    open_pipeline,
    restored_state,
    run,
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

    import dlt

    pipeline = open_pipeline(project, source)
    state = restored_state(project, pipeline, source)
    plan = plan_load(files, state.get(STATE_KEY, {}), source.write_disposition)
    if plan.empty:
        return make_record(source, pipeline, project, table, RunResult([], 0), started)

    def resources() -> Any:
        @dlt.resource(
            name=table,
            write_disposition=disposition,
            primary_key=list(source.primary_key) or None,
            columns=column_hints(source),
        )
        def rows() -> Iterator[list[dict[str, Any]]]:
            for item in plan.to_load:
                yield from read_csv(item, delimiter, encoding, chunk_rows)
            # committed with the load package, so a failed load leaves the old fingerprints
            dlt.current.source_state()[STATE_KEY] = dict(plan.after)

        return rows

    result = run(project, pipeline, source, resources, table)
    return make_record(source, pipeline, project, table, result, started)


def read_csv(
    item: LandingFile, delimiter: str, encoding: str, chunk_rows: int
) -> Iterator[list[dict[str, Any]]]:
    """Rows of one CSV file in chunks, missing values as None; a bad file names itself.

    A row with more fields than the header is an error (pandas would otherwise take the
    first column as an index, or drop the extra fields).
    """
    import pandas as pd

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
                yield [
                    {k: (None if _is_missing(v) else v) for k, v in row.items()}
                    for row in chunk.to_dict(orient="records")
                ]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SourceDataError(str(item.path), _one_line(exc)) from exc
    except (ValueError, OSError) as exc:
        raise SourceDataError(str(item.path), _one_line(exc)) from exc


def _is_missing(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    return value is None or (type(value).__name__ == "NaTType")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, UnicodeDecodeError):
        text = f"not valid {exc.encoding} text at byte {exc.start}"
    return text or type(exc).__name__

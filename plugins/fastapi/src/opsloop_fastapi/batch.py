"""Batch scoring: a Parquet file or folder, a CSV file or a warehouse table, in chunks.

The output is a folder of ``part-NNNNN.parquet`` files, one per chunk of ``chunk_rows``
input rows, plus ``_manifest.json``. A part is written under a hidden temporary name and
renamed; the manifest (rewritten atomically after each part) records the finished parts
with their row counts, the input's fingerprint, the model version and the chunk size.
A re-run with the same input, model and chunk size skips the finished parts and redoes
any other (a part a crash left half-written, or one renamed before the manifest said so).
A different input, model or chunk size is refused rather than mixed into the old output.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.batch_output import (
    PART,
    files_fingerprint,
    finish_output,
    open_output,
    write_manifest,
)
from opsloop.errors import OpsloopError, first_line, one_line

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.project import Project
    from opsloop.records import ModelVersionRef

DUCKDB_PREFIX = "duckdb:"
_TABLE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class BatchResult:
    """What a batch run did: rows in the output, parts in all, parts skipped and written."""

    rows: int
    parts: int
    skipped: int
    written: int
    output: Path


# ---------------------------------------------------------------------- sources
class _Source:
    """Input rows in deterministic chunks of exactly ``chunk_rows`` (the last may be short)."""

    spec: str

    def fingerprint(self) -> str:
        raise NotImplementedError

    def count(self) -> int | None:
        raise NotImplementedError

    def chunks(self, chunk_rows: int, skip: set[int]) -> Iterator[tuple[int, pd.DataFrame | None]]:
        """(index, frame) per chunk; frame is None for skipped chunks when it can be avoided."""
        raise NotImplementedError


class _ParquetSource(_Source):
    def __init__(self, path: Path) -> None:
        import pyarrow.dataset as ds

        self.spec = str(path)
        self.path = path
        if path.is_dir():
            self.files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not self.files:
                raise OpsloopError(f"batch input {path} holds no .parquet files")
        else:
            self.files = [path]
        try:
            self.dataset = ds.dataset([str(f) for f in self.files], format="parquet")
        except Exception as exc:  # noqa: BLE001 - any read failure is the input's fault
            raise OpsloopError(f"batch input {path} is not readable Parquet: {exc}") from None

    def fingerprint(self) -> str:
        return files_fingerprint(self.files, self.path)

    def count(self) -> int | None:
        return int(self.dataset.count_rows())

    def chunks(self, chunk_rows: int, skip: set[int]) -> Iterator[tuple[int, pd.DataFrame | None]]:
        import pyarrow as pa

        pending: list[Any] = []
        size = 0
        index = 0
        for batch in self.dataset.to_batches(batch_size=min(chunk_rows, 65_536)):
            pending.append(batch)
            size += batch.num_rows
            while size >= chunk_rows:
                table = pa.Table.from_batches(pending)
                head, rest = table.slice(0, chunk_rows), table.slice(chunk_rows)
                yield index, None if index in skip else head.to_pandas()
                index += 1
                pending = rest.to_batches()
                size = rest.num_rows
        if size:
            table = pa.Table.from_batches(pending)
            yield index, None if index in skip else table.to_pandas()


class _CsvSource(_Source):
    def __init__(self, path: Path) -> None:
        self.spec = str(path)
        self.path = path

    def fingerprint(self) -> str:
        return files_fingerprint([self.path], self.path)

    def count(self) -> int | None:
        with self.path.open("rb") as fh:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        return max(0, lines - 1)

    def chunks(self, chunk_rows: int, skip: set[int]) -> Iterator[tuple[int, pd.DataFrame | None]]:
        import pandas as pd

        try:
            reader = pd.read_csv(self.path, chunksize=chunk_rows)
            for index, frame in enumerate(reader):
                yield index, None if index in skip else frame
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise OpsloopError(f"batch input {self.path} is not a readable CSV: {exc}") from None


class _DuckdbSource(_Source):
    """A warehouse table, read-only, in rowid order."""

    def __init__(self, project: Project, spec: str) -> None:
        match = _TABLE.match(spec[len(DUCKDB_PREFIX) :])
        if not match:
            raise OpsloopError(
                f"batch input '{spec}' must be duckdb:DATASET.TABLE (letters, digits, '_')"
            )
        self.spec = spec
        self.table = f'"{match.group(1)}"."{match.group(2)}"'
        self.path = project.warehouse_path
        if not self.path.exists():
            raise OpsloopError(f"batch input '{spec}': the warehouse {self.path} does not exist")
        import duckdb

        try:
            self.con = duckdb.connect(str(self.path), read_only=True)
            self.rows, self.sum = self.con.execute(
                f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM {self.table} t"
            ).fetchone()
        except duckdb.Error as exc:
            raise OpsloopError(f"batch input '{spec}': {first_line(exc)}") from None

    def fingerprint(self) -> str:
        return f"duckdb:{self.table}:{self.rows}:{self.sum}"

    def count(self) -> int | None:
        return int(self.rows)

    def chunks(self, chunk_rows: int, skip: set[int]) -> Iterator[tuple[int, pd.DataFrame | None]]:
        try:
            parts = (int(self.rows) + chunk_rows - 1) // chunk_rows
            for index in range(parts):
                if index in skip:
                    yield index, None
                    continue
                yield (
                    index,
                    self.con.execute(
                        f"SELECT * FROM {self.table} ORDER BY rowid LIMIT ? OFFSET ?",
                        [chunk_rows, index * chunk_rows],
                    ).df(),
                )
        finally:
            self.con.close()


def open_source(project: Project, spec: str | Path) -> _Source:
    """The input named by ``spec``: a .parquet file/folder, a .csv file, or duckdb:DS.TABLE."""
    text = str(spec)
    if text.startswith(DUCKDB_PREFIX):
        return _DuckdbSource(project, text)
    path = Path(text)
    if not path.exists():
        raise OpsloopError(f"batch input {path} does not exist")
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return _ParquetSource(path)
    if path.suffix.lower() in (".csv", ".txt"):
        return _CsvSource(path)
    raise OpsloopError(
        f"batch input {path}: unknown format '{path.suffix}'; use a .parquet file or folder, "
        "a .csv file, or duckdb:DATASET.TABLE"
    )


# ---------------------------------------------------------------------- scoring
def _prepare(frame: pd.DataFrame, ref: ModelVersionRef, start: int) -> pd.DataFrame:
    """Check the signature's columns and cast them to its types (a clear error otherwise)."""
    import pandas as pd

    from opsloop_fastapi.schema import COLUMN_TYPES, parse_signature

    columns = parse_signature(ref.signature) or []
    missing = [c.name for c in columns if c.required and c.name not in frame.columns]
    if missing:
        raise OpsloopError(
            f"batch input lacks column(s) {', '.join(missing[:8])} of model {ref.name} "
            f"v{ref.version}"
        )
    out = frame.copy()
    for col in columns:
        if col.name not in out.columns:
            out[col.name] = None
            continue
        dtype = COLUMN_TYPES.get(col.type, (None, None))[1]
        if dtype in ("float64", "float32", "int64", "int32"):
            values = pd.to_numeric(out[col.name], errors="coerce")
            bad = values.isna() & out[col.name].notna()
            if bad.any():
                row = start + int(bad.to_numpy().nonzero()[0][0])
                raise OpsloopError(
                    f"batch input row {row}, column '{col.name}': "
                    f"{out[col.name][bad].iloc[0]!r} is not a number ({col.type})"
                )
            if not values.isna().any():
                with contextlib.suppress(TypeError, ValueError, OverflowError):
                    values = values.astype(dtype)
            out[col.name] = values
    return out[[c.name for c in columns]] if columns else out


def _score(model: Any, frame: pd.DataFrame, ref: ModelVersionRef, start: int) -> pd.DataFrame:
    import numpy as np

    prepared = _prepare(frame, ref, start)
    try:
        predictions = model.predict(prepared)
        has_proba = callable(getattr(model, "predict_proba", None))
        proba = model.predict_proba(prepared) if has_proba else None
    except OpsloopError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's refusal, as one line
        raise OpsloopError(
            f"model {ref.name} v{ref.version} could not score input rows {start}..: {one_line(exc)}"
        ) from None
    out = frame.reset_index(drop=True).copy()
    values = np.asarray(predictions)
    if values.ndim == 1:
        out["prediction"] = values
    else:
        for i in range(values.shape[1]):
            out[f"prediction_{i}"] = values[:, i]
    if proba is not None:
        proba = np.asarray(proba)
        classes = list(getattr(model, "classes_", range(proba.shape[1])))
        for i, label in enumerate(classes[: proba.shape[1]]):
            out[f"probability_{label}"] = proba[:, i]
    return out


def run_batch(
    project: Project,
    ref: ModelVersionRef,
    input_spec: str | Path,
    output: Path,
    *,
    chunk_rows: int,
    progress: Callable[[int, int | None], None] | None = None,
) -> BatchResult:
    """Score ``input_spec`` with ``ref`` into ``output``, skipping parts already finished."""
    from opsloop_fastapi.server import model_store

    if chunk_rows < 1:
        raise OpsloopError("chunk size must be at least 1 row")
    output = Path(output)
    source = open_source(project, input_spec)
    fingerprint = source.fingerprint()
    identity = {
        "input": source.spec,
        "fingerprint": fingerprint,
        "model": {"name": ref.name, "version": ref.version, "uri": ref.uri},
        "chunk_rows": chunk_rows,
    }
    manifest = open_output(output, identity, "input, model version or chunk size")
    parts: dict[str, Any] = manifest["parts"]
    done = {int(name[5:10]) for name in parts}
    total = source.count()
    model = model_store(project).load(ref)
    rows_done = sum(int(info["rows"]) for info in parts.values())
    if progress is not None:
        progress(rows_done, total)
    written = 0
    seen = 0
    for index, frame in source.chunks(chunk_rows, done):
        seen = index + 1
        if frame is None:
            continue
        scored = _score(model, frame, ref, index * chunk_rows)
        name = PART.format(index)
        tmp = output / f".{name}.tmp"
        scored.to_parquet(tmp, index=False)
        os.replace(tmp, output / name)
        parts[name] = {"rows": len(scored), "first_row": index * chunk_rows}
        manifest["complete"] = False
        write_manifest(output, manifest)
        written += 1
        rows_done += len(scored)
        if progress is not None:
            progress(rows_done, total)
    expected = {PART.format(i) for i in range(seen)}
    finish_output(output, manifest, expected)  # drops parts of an earlier, longer input
    return BatchResult(
        rows=manifest["rows"],
        parts=len(manifest["parts"]),
        skipped=len(done & {int(n[5:10]) for n in expected}),
        written=written,
        output=output,
    )


# ---------------------------------------------------------------------- scale-out
def score_part(
    ref: ModelVersionRef, model: Any, frame: pd.DataFrame, first_row: int
) -> pd.DataFrame:
    """One partition scored exactly as :func:`run_batch` scores a chunk (for cluster workers)."""
    return _score(model, frame, ref, first_row)


def load_for_worker(project_path: str, ref: ModelVersionRef) -> Any:
    """Open the project at ``project_path`` and load ``ref`` as the local path does."""
    from opsloop.project import Project
    from opsloop_fastapi.server import load_checked, model_store

    project = Project.open(project_path, start=False)
    try:
        return load_checked(project, model_store(project), ref)
    finally:
        project.close()


def _is_parquet(spec: str) -> bool:
    path = Path(spec)
    return not spec.startswith(DUCKDB_PREFIX) and (
        path.is_dir() or path.suffix.lower() in (".parquet", ".pq")
    )


def score_anywhere(
    project: Project,
    ref: ModelVersionRef,
    input_spec: str | Path,
    output: Path,
    *,
    chunk_rows: int,
    progress: Callable[[int, int | None], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[BatchResult, str]:
    """Score on the configured cluster engine (the ``scale_out`` hook) when there is one and
    the input is Parquet, else in this process; returns (result, engine name)."""
    from functools import partial

    spec = str(input_spec)
    engine = project.hook.scale_out(project=project)
    if engine is None:
        return run_batch(project, ref, spec, output, chunk_rows=chunk_rows, progress=progress), ""
    if not _is_parquet(spec):
        if note is not None:
            note(f"{engine.name} scores Parquet only; scoring {spec} in this process")
        return run_batch(project, ref, spec, output, chunk_rows=chunk_rows, progress=progress), ""
    from opsloop.interfaces import BatchJob

    source = Path(project.config.source)
    where = str((source if source.is_file() else project.root).resolve())  # workers: any cwd
    job = BatchJob(
        ref=ref,
        input=spec,
        output=Path(output),
        load_model=partial(load_for_worker, where, ref),
        score=partial(score_part, ref),
        progress=progress,
        chunk_rows=chunk_rows,
    )
    done = engine.score_batch(job)
    result = BatchResult(done.rows, done.parts, done.skipped, done.written, Path(output))
    return result, str(engine.name)

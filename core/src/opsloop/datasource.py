"""Data to profile or check, named on the command line: a warehouse table or a file.

``duckdb:dataset.table`` is read through the ``read_dataset`` hook (so its lineage, load
ids and content hash, comes along); a ``.csv``/``.tsv`` or ``.parquet`` file is streamed
in chunks, so a file larger than memory can be profiled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, one_line

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.profiles import ChunkSource
    from opsloop.project import Project

TABLE_PREFIX = "duckdb:"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class DataSource:
    """A named source of rows: how to read it in chunks and where it came from."""

    name: str
    chunks: ChunkSource
    rows: int | None = None  # known up front (tables, Parquet), else None
    lineage: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """Every row at once (for a window, which fits in memory by definition)."""
        import pandas as pd

        parts = list(self.chunks())
        if not parts:
            return pd.DataFrame()
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def open_source(project: Project, spec: str, *, chunk_rows: int = 100_000) -> DataSource:
    """The table or file ``spec`` names; a one-line error says what is wrong with it."""
    if spec.startswith(TABLE_PREFIX):
        return _table(project, spec[len(TABLE_PREFIX) :], chunk_rows)
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if not path.is_file():
        hint = ""
        if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES and "." in spec and "/" not in spec:
            hint = f"; for a warehouse table write {TABLE_PREFIX}{spec}"
        raise OpsloopError(f"no such file '{spec}'{hint}")
    if suffix in CSV_SUFFIXES:
        return _csv(path, chunk_rows)
    if suffix in PARQUET_SUFFIXES:
        return _parquet(path, chunk_rows)
    raise OpsloopError(
        f"'{path.name}' is neither CSV nor Parquet (expected one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}), nor a table ({TABLE_PREFIX}dataset.table)"
    )


def _table(project: Project, name: str, chunk_rows: int) -> DataSource:
    from opsloop.profiles import frame_chunks
    from opsloop.registry import read_table

    data = read_table(project, name, "table")
    return DataSource(
        name=f"{TABLE_PREFIX}{name}",
        chunks=frame_chunks(data.frame, chunk_rows),
        rows=len(data.frame),
        lineage={
            "kind": "table",
            "table": name,
            "load_ids": list(data.load_ids),
            "content_hash": data.content_hash,
        },
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_lineage(path: Path) -> dict[str, Any]:
    return {
        "kind": "file",
        "path": str(path.resolve()),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
    }


def _csv(path: Path, chunk_rows: int) -> DataSource:
    try:
        import pandas as pd
    except ImportError:
        raise OpsloopError("reading CSV files needs pandas: pip install pandas") from None

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            yield from pd.read_csv(
                path, sep="\t" if path.suffix.lower() == ".tsv" else ",", chunksize=chunk_rows
            )
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise OpsloopError(f"cannot read '{path}': {one_line(exc)}") from None

    return DataSource(str(path), chunks, None, _file_lineage(path))


def _parquet(path: Path, chunk_rows: int) -> DataSource:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise OpsloopError("reading Parquet files needs pyarrow: pip install pyarrow") from None
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:  # noqa: BLE001 - any reader error becomes one line
        raise OpsloopError(f"cannot read '{path}': {one_line(exc)}") from None

    def chunks() -> Iterator[pd.DataFrame]:
        handle = pq.ParquetFile(path)
        for batch in handle.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()

    return DataSource(str(path), chunks, rows, _file_lineage(path))

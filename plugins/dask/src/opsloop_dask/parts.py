"""Input partitions of a Parquet file or folder, and what identifies a run's output.

A partition is a run of consecutive row groups of one file, closed once it holds at
least ``chunk_rows`` rows (a file never spans two partitions, a row group is never cut).
The files are taken in the order the local path reads them (sorted), so the output parts,
read in order, hold the local path's rows in its order.

The output is ``part-NNNNN.parquet`` per partition plus ``_manifest.json``, which records
the finished parts (:mod:`opsloop.batch_output`, rewritten by the client after each
one). A worker writes its part under a hidden temporary name and renames it, so a part is
whole or absent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from opsloop.batch_output import PART
from opsloop.errors import OpsloopError, one_line

#: rows per partition when the caller names none
DEFAULT_PARTITION_ROWS = 500_000


@dataclass(frozen=True)
class Partition:
    """Row groups ``row_groups`` of ``file``: ``rows`` rows starting at input row ``first_row``."""

    index: int
    file: str
    row_groups: tuple[int, ...]
    rows: int
    first_row: int

    @property
    def name(self) -> str:
        return PART.format(self.index)


def input_files(spec: str) -> list[Path]:
    """The Parquet files of a file or folder, in the local path's order, as absolute paths
    (workers may run in another folder)."""
    path = Path(spec).resolve()
    if not path.exists():
        raise OpsloopError(f"batch input {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise OpsloopError(f"batch input {path} holds no .parquet files")
        return files
    return [path]


def plan(files: list[Path], chunk_rows: int) -> list[Partition]:
    """The partitions of ``files`` (see the module docstring)."""
    import pyarrow.parquet as pq

    if chunk_rows < 1:
        raise OpsloopError("chunk size must be at least 1 row")
    partitions: list[Partition] = []
    first = 0
    for file in files:
        try:
            meta = pq.ParquetFile(file).metadata
        except Exception as exc:  # noqa: BLE001 - any reader error is the input's fault
            raise OpsloopError(
                f"batch input {file} is not readable Parquet: {one_line(exc)}"
            ) from None
        groups: list[int] = []
        rows = 0
        for group in range(meta.num_row_groups):
            groups.append(group)
            rows += meta.row_group(group).num_rows
            if rows >= chunk_rows or group == meta.num_row_groups - 1:
                if rows:
                    partitions.append(
                        Partition(len(partitions), str(file), tuple(groups), rows, first)
                    )
                first += rows
                groups, rows = [], 0
    return partitions


def layout(partitions: list[Partition]) -> str:
    """A digest of how the input is cut into partitions."""
    text = "\n".join(f"{p.file}:{','.join(map(str, p.row_groups))}" for p in partitions)
    return hashlib.sha256(text.encode()).hexdigest()

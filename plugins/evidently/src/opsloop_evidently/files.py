"""Read a drift window from a CSV or Parquet file, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError, one_line

if TYPE_CHECKING:
    import pandas as pd

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_frame(path: Path, label: str) -> pd.DataFrame:
    """The ``label`` window (reference/current) stored at ``path``."""
    import pandas as pd

    suffix = path.suffix.lower()
    if not path.is_file():
        raise OpsloopError(f"--{label}: no such file '{path}'")
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise OpsloopError(
            f"--{label}: '{path.name}' is neither CSV nor Parquet "
            f"(expected one of {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})"
        )
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except ImportError:
        raise OpsloopError(
            f"--{label}: reading Parquet needs pyarrow: pip install 'opsloop-evidently[parquet]'"
        ) from None
    except (ValueError, OSError) as exc:
        raise OpsloopError(f"--{label}: cannot read '{path}': {one_line(exc)}") from None

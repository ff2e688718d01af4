"""Check and split the two windows a detector compares, with one-line errors for people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pandas.api import types as ptypes

from opsloop.errors import OpsloopError


@dataclass
class Windows:
    """The reference and current windows cut to the compared columns, typed once."""

    reference: pd.DataFrame
    current: pd.DataFrame
    numerical: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        return list(self.reference.columns)


def _names(columns: list[str]) -> str:
    return ", ".join(f"'{c}'" for c in columns)


def _is_numeric(series: pd.Series) -> bool:
    return ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series)


def _is_temporal(series: pd.Series) -> bool:
    return ptypes.is_datetime64_any_dtype(series) or ptypes.is_timedelta64_dtype(series)


def prepare(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str] | None) -> Windows:
    """Validate both windows and keep ``columns`` (default: every reference column)."""
    for label, frame in (("reference", reference), ("current", current)):
        if not isinstance(frame, pd.DataFrame):
            raise OpsloopError(
                f"the {label} window must be a pandas DataFrame, got {type(frame).__name__}"
            )
    wanted = list(dict.fromkeys(columns if columns is not None else reference.columns))
    if not wanted:
        raise OpsloopError("no columns to compare; pass columns or a reference with columns")
    problems = []
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            problems.append(f"{_names(missing)} missing from the {label} window")
    if problems:
        raise OpsloopError(
            "drift check: " + "; ".join(problems) + "; fix the data or pass columns that exist"
        )
    for label, frame in (("reference", reference), ("current", current)):
        if len(frame) == 0:
            raise OpsloopError(
                f"drift check: the {label} window is empty (0 rows); "
                "widen the window or wait for more data"
            )
    ref, cur = reference[wanted], current[wanted]
    temporal = [c for c in wanted if _is_temporal(ref[c]) or _is_temporal(cur[c])]
    if temporal:
        raise OpsloopError(
            f"drift check: {_names(temporal)} are date/time columns; "
            "pass columns that leave them out"
        )
    for label, frame in (("reference", ref), ("current", cur)):
        empty = [c for c in wanted if frame[c].notna().sum() == 0]
        if empty:
            raise OpsloopError(
                f"drift check: {_names(empty)} have no values in the {label} window; "
                "leave them out of columns"
            )
    mixed = [c for c in wanted if _is_numeric(ref[c]) != _is_numeric(cur[c])]
    if mixed:
        raise OpsloopError(
            f"drift check: {_names(mixed)} are numeric in one window and not in the other; "
            "fix the column types"
        )
    numerical = [c for c in wanted if _is_numeric(ref[c])]
    categorical = [c for c in wanted if c not in numerical]
    return Windows(ref, cur, numerical, categorical)


def report_file(report_dir: Path, prefix: str) -> Path:
    """A new, timestamped report path under ``report_dir`` (the folder is created)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = report_dir / f"{prefix}-{stamp}.html"
    n = 1
    while path.exists():
        path = report_dir / f"{prefix}-{stamp}-{n}.html"
        n += 1
    return path


def share_rule(drift_share: float) -> str:
    """The dataset verdict in words (``DriftResult.rule``)."""
    return f"the dataset drifts when at least {drift_share:.0%} of the columns drifted"


def dataset_drifted(drifted: int, total: int, drift_share: float) -> tuple[bool, float]:
    """The dataset verdict: at least one feature drifted and their share >= ``drift_share``."""
    share = drifted / total if total else 0.0
    return drifted > 0 and share >= drift_share, share

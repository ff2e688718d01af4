"""The prediction log's column contract, shared by its readers (Parquet/JSONL and PostgreSQL).

Stored rows carry ``input.<feature>`` columns and JSON-encoded outputs; :func:`log_frame`
turns them into the frame ``read_predictions`` returns: the features, then
:data:`META_COLUMNS`, with feedback labels joined by request id and row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsloop_fastapi.entries import INPUT_PREFIX

if TYPE_CHECKING:
    import pandas as pd

META_COLUMNS = (
    "request_id",
    "row",
    "model_version",
    "role",
    "logged_at",
    "latency_ms",
    "prediction",
    "label",
)
#: roles answered to clients; "fallback": the champion answered for a failed challenger
SERVED_ROLES = ("champion", "challenger", "fallback")


def log_frame(
    frames: list[pd.DataFrame],
    model: str,
    since: datetime | None,
    roles: tuple[str, ...] | None,
    feedback: Callable[[], pd.DataFrame] | None,
) -> pd.DataFrame:
    """Frames as stored (``input.*``, JSON columns) as ``read_predictions`` returns them.

    Shared by the Parquet and the PostgreSQL readers, so both keep one column contract;
    ``feedback`` returns ``read_feedback``'s frame (request_id, row, label, received_at),
    whose labels are joined.
    """
    import pandas as pd

    frames = [_unflatten(f) for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(META_COLUMNS))
    for f in frames:
        f["logged_at"] = pd.to_datetime(f["logged_at"], utc=True, format="ISO8601")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if "model" in frame.columns:
        frame = frame[frame["model"] == model].drop(columns=["model"])
    if "role" not in frame.columns:
        frame["role"] = "champion"
    frame["role"] = frame["role"].fillna("champion")
    if roles is not None:
        frame = frame[frame["role"].isin(roles)]
    if since is not None:
        frame = frame[frame["logged_at"] >= pd.Timestamp(since)]
    frame = frame.sort_values(["logged_at", "request_id", "row", "role"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["label"] = _labels(feedback(), frame) if feedback is not None else None
    extra = [c for c in ("probabilities",) if c in frame.columns]
    features = [c for c in frame.columns if c not in META_COLUMNS and c not in extra]
    return frame[features + list(META_COLUMNS) + extra].reset_index(drop=True)


def memory_duckdb() -> Any:
    """An in-memory DuckDB connection on UTC: both readers turn stored columns into pandas
    through it, so they give the same dtypes."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def _unflatten(frame: pd.DataFrame) -> pd.DataFrame:
    """``input.<feature>`` columns back to feature names, then the metadata."""
    import pandas as pd

    if "prediction_json" in frame.columns:
        decoded = [json.loads(v) if isinstance(v, str) else None for v in frame["prediction_json"]]
        if "prediction" in frame.columns:
            frame["prediction"] = [
                d if isinstance(j, str) else p
                for p, j, d in zip(
                    frame["prediction"], frame["prediction_json"], decoded, strict=True
                )
            ]
        else:
            frame["prediction"] = decoded
        frame = frame.drop(columns=["prediction_json"])
    if "probabilities_json" in frame.columns:
        frame["probabilities"] = [
            json.loads(v) if isinstance(v, str) else None for v in frame.pop("probabilities_json")
        ]
    size = len(INPUT_PREFIX)
    inputs = {
        c: c[size:]
        for c in frame.columns
        if c.startswith(INPUT_PREFIX) and c[size:] not in (*META_COLUMNS, "model")
    }
    meta = frame[[c for c in frame.columns if not c.startswith(INPUT_PREFIX)]]
    return pd.concat([frame[list(inputs)].rename(columns=inputs), meta], axis=1)


def _labels(feedback: pd.DataFrame, frame: pd.DataFrame) -> Any:
    import pandas as pd

    if feedback.empty or frame.empty:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    keyed = feedback.set_index(["request_id", "row"])["label"]
    index = pd.MultiIndex.from_arrays([frame["request_id"], frame["row"].astype("int64")])
    labels = keyed.reindex(index)
    values = labels.to_numpy(dtype=object)
    series = pd.Series(values, index=frame.index, dtype=object)
    numeric = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    if numeric and all(isinstance(v, int | float) and not isinstance(v, bool) for v in numeric):
        return pd.to_numeric(series)
    return series.where(series.notna(), None)

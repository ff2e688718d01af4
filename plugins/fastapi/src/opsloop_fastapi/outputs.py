"""Model outputs as JSON-ready values: MLflow's response shapes, NaN and inf as null."""

from __future__ import annotations

import math
from typing import Any

#: Values a prediction log entry stores as they are (one-row requests), not in a list.
ATOMS = frozenset({int, float, str, bool, type(None)})


def to_jsonable(outputs: Any) -> list[Any]:
    """Model outputs as a JSON-ready list (MLflow's shapes; NaN and inf become null)."""
    import numpy as np

    if isinstance(outputs, np.ndarray):
        array = outputs if outputs.ndim else np.atleast_1d(outputs)
        kind = array.dtype.kind
        if kind in "biu" or (kind == "f" and bool(np.isfinite(array).all())):
            return array.tolist()  # type: ignore[no-any-return]
        return _clean(array.tolist())  # type: ignore[no-any-return]
    import pandas as pd

    if isinstance(outputs, pd.DataFrame):
        return _clean(outputs.to_dict(orient="records"))  # type: ignore[no-any-return]
    if isinstance(outputs, pd.Series):
        return to_jsonable(outputs.to_numpy())
    if isinstance(outputs, list | tuple):
        return _clean(list(outputs))  # type: ignore[no-any-return]
    return [_clean(outputs)]


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _clean(tolist())
    return str(value)

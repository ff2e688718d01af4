"""What runs on the workers: the model loaded once per worker process, a partition scored
and written atomically. Imported by the workers only (it imports pandas and pyarrow)."""

from __future__ import annotations

import hashlib
import os
import pickle
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsloop_dask.parts import Partition

_lock = threading.Lock()
_model: tuple[str, Any] | None = None
#: keys of the models this process loaded, in order (tests read it through client.run)
LOADS: list[str] = []


def model_key(load_model: Callable[[], Any]) -> str:
    """A key for what ``load_model`` loads (the digest of its pickle)."""
    return hashlib.sha256(pickle.dumps(load_model)).hexdigest()


def cached_model(load_model: Callable[[], Any], key: str) -> Any:
    """The model ``load_model`` loads, loaded once per process (one model kept)."""
    global _model
    with _lock:
        if _model is None or _model[0] != key:
            _model = None  # let the old one go before the new one loads
            _model = (key, load_model())
            LOADS.append(key)
        return _model[1]


def read_partition(part: Partition) -> Any:
    """The partition's rows as a pandas frame."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(part.file).read_row_groups(list(part.row_groups))
    return table.to_pandas()


def score_partition(
    part: Partition,
    output: str,
    load_model: Callable[[], Any],
    key: str,
    score: Callable[[Any, Any, int], Any],
) -> int:
    """Score one partition into ``output/part-NNNNN.parquet`` (tmp + rename); its rows."""
    model = cached_model(load_model, key)
    scored = score(model, read_partition(part), part.first_row)
    folder = Path(output)
    tmp = folder / f".{part.name}.{uuid.uuid4().hex}.tmp"
    try:
        scored.to_parquet(tmp, index=False)
        os.replace(tmp, folder / part.name)
    finally:
        tmp.unlink(missing_ok=True)
    return len(scored)

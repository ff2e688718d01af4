"""The prediction log: scored rows written off the hot path, and read back for monitoring.

A request only does ``queue.put_nowait``; a background thread turns entries into rows and
appends them in batches to files under ``<home>/predictions/<model>/date=YYYY-MM-DD/``.
Each writer (one per server process) owns its files, so replicas never share a file and
readers never see a half-written Parquet file (written to a temporary name, then renamed).
A full queue drops the entry and counts it; a request never waits for the disk.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("opsloop_fastapi.predlog")

LogFormat = Literal["jsonl", "parquet"]
META_COLUMNS = ("request_id", "row", "model_version", "logged_at", "latency_ms", "prediction")
_INPUT_PREFIX = "input."
_SCALARS = (int, float, str, bool, type(None))


@dataclass(frozen=True)
class LogEntry:
    """One scored request: its input rows, predictions and timing."""

    request_id: str
    model: str
    model_version: str
    logged_at: str  # ISO 8601 UTC, when the request was scored
    latency_ms: float
    inputs: pd.DataFrame
    predictions: list[Any]

    @property
    def rows(self) -> int:
        return len(self.inputs)


def model_dir(root: Path, model: str) -> Path:
    """The folder of one model's log; the name is made safe for a path."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model).lstrip(".") or "_"
    return root / safe


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class PredictionLog:
    """A bounded queue and one writer thread that appends entries in batches."""

    def __init__(
        self,
        directory: Path,
        *,
        fmt: LogFormat = "jsonl",
        queue_size: int = 10_000,
        batch_rows: int = 5_000,
        flush_seconds: float = 1.0,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.fmt = fmt
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.dropped_rows = 0
        self.written_rows = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._on_dropped = on_dropped
        self._on_written = on_written
        self._writer_id = f"{os.getpid()}-{int(time.time() * 1000):x}-{secrets.token_hex(3)}"
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ producer side
    def submit(self, entry: LogEntry) -> bool:
        """Queue ``entry`` without blocking; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._dropped(entry.rows)
            return False
        return True

    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self.running:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"opsloop-predlog-{self.directory.name}", daemon=True
            )
            self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued so far; False when it did not finish within ``timeout``."""
        if not self.running:
            return self._queue.empty()
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued and stop the writer; False when it did not stop in time."""
        with self._lock:
            thread = self._thread
        if thread is None or not thread.is_alive():
            return True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.error("prediction log: writer did not drain its queue in %.0f s", timeout)
            return False
        thread.join(timeout)
        return not thread.is_alive()

    # ------------------------------------------------------------------ writer side
    def _dropped(self, rows: int) -> None:
        self.dropped_rows += rows
        if self._on_dropped is not None:
            self._on_dropped(rows)

    def _run(self) -> None:
        batch: list[LogEntry] = []
        rows = 0
        deadline = 0.0
        while True:
            wait = self.flush_seconds if not batch else max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, LogEntry):
                if not batch:
                    deadline = time.monotonic() + self.flush_seconds
                batch.append(item)
                rows += item.rows
            due = rows >= self.batch_rows or (batch and time.monotonic() >= deadline)
            if batch and (due or item is _STOP or isinstance(item, _Flush)):
                self._write(batch)
                batch, rows = [], 0
            if isinstance(item, _Flush):
                item.done.set()
            if item is _STOP:
                return

    def _write(self, batch: list[LogEntry]) -> None:
        total = sum(e.rows for e in batch)
        try:
            by_day: dict[str, list[LogEntry]] = {}
            for entry in batch:
                by_day.setdefault(entry.logged_at[:10], []).append(entry)
            for day, entries in by_day.items():
                folder = self.directory / f"date={day}"
                folder.mkdir(parents=True, exist_ok=True)
                frame = batch_frame(entries)
                if self.fmt == "parquet":
                    self._write_parquet(folder, frame)
                else:
                    self._write_jsonl(folder, frame)
        except Exception:
            logger.exception("prediction log: could not write %d rows to %s", total, self.directory)
            self._dropped(total)
            return
        self.written_rows += total
        if self._on_written is not None:
            self._on_written(total)

    def _write_jsonl(self, folder: Path, frame: pd.DataFrame) -> None:
        text = frame.to_json(orient="records", lines=True, date_format="iso", double_precision=15)
        if not text.endswith("\n"):
            text += "\n"
        # one write() per batch: a reader can only ever see a torn last line
        with open(folder / f"part-{self._writer_id}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()

    def _write_parquet(self, folder: Path, frame: pd.DataFrame) -> None:
        if any(not isinstance(p, _SCALARS) for p in frame["prediction"]):
            text = [json.dumps(p, default=str) for p in frame.pop("prediction")]
            frame.insert(len(META_COLUMNS), "prediction_json", text)
        self._seq += 1
        target = folder / f"part-{self._writer_id}-{self._seq:06d}.parquet"
        tmp = folder / f".{target.name}.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)


def batch_frame(entries: list[LogEntry]) -> pd.DataFrame:
    """Entries as one flat frame: metadata columns, then ``input.<feature>`` columns."""
    import pandas as pd

    meta: dict[str, list[Any]] = {name: [] for name in (*META_COLUMNS, "model")}
    for e in entries:
        n = e.rows
        preds = list(e.predictions[:n]) + [None] * max(0, n - len(e.predictions))
        meta["request_id"] += [e.request_id] * n
        meta["row"] += list(range(n))
        meta["model_version"] += [e.model_version] * n
        meta["logged_at"] += [e.logged_at] * n
        meta["latency_ms"] += [e.latency_ms] * n
        meta["prediction"] += preds
        meta["model"] += [e.model] * n
    frames = [e.inputs for e in entries]
    inputs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    inputs = inputs.reset_index(drop=True).add_prefix(_INPUT_PREFIX)
    return pd.concat([pd.DataFrame(meta), inputs], axis=1)


# ---------------------------------------------------------------------- reading
def parse_since(since: str | None) -> datetime | None:
    """An ISO date or timestamp as an aware UTC datetime (naive means UTC)."""
    if since is None or since == "":
        return None
    from opsloop.errors import OpsloopError

    try:
        value = datetime.fromisoformat(since.strip())
    except ValueError:
        raise OpsloopError(
            f"since={since!r} is not an ISO date or timestamp; use e.g. 2026-11-27 or "
            "2026-11-27T09:30:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_log(directory: Path, model: str, since: datetime | None = None) -> pd.DataFrame | None:
    """Logged rows of ``model`` at or after ``since``; None when it has no log folder."""
    import pandas as pd

    if not directory.is_dir():
        return None
    first_day = since.date().isoformat() if since else ""
    frames: list[pd.DataFrame] = []
    for folder in sorted(directory.glob("date=*")):
        if folder.name[5:] < first_day:
            continue
        for file in sorted(folder.glob("part-*")):
            if file.suffix == ".jsonl":
                frames.append(_unflatten(_read_jsonl(file)))
            elif file.suffix == ".parquet":
                frames.append(_unflatten(pd.read_parquet(file)))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(META_COLUMNS))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if "model" in frame.columns:
        frame = frame[frame["model"] == model].drop(columns=["model"])
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    if since is not None:
        frame = frame[frame["logged_at"] >= pd.Timestamp(since)]
    frame = frame.sort_values(["logged_at", "request_id", "row"], kind="stable")
    features = [c for c in frame.columns if c not in META_COLUMNS]
    return frame[features + list(META_COLUMNS)].reset_index(drop=True)


def _read_jsonl(file: Path) -> pd.DataFrame:
    import io

    import pandas as pd

    text = file.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # another process is appending a batch right now
        text = text[: text.rfind("\n") + 1]
    if not text:
        return pd.DataFrame()
    return pd.read_json(io.StringIO(text), lines=True, dtype=False, convert_dates=False)


def _unflatten(frame: pd.DataFrame) -> pd.DataFrame:
    """``input.<feature>`` columns back to feature names, then the metadata."""
    import pandas as pd

    if "prediction_json" in frame.columns:
        frame["prediction"] = [json.loads(v) for v in frame.pop("prediction_json")]
    size = len(_INPUT_PREFIX)
    inputs = {
        c: c[size:]
        for c in frame.columns
        if c.startswith(_INPUT_PREFIX) and c[size:] not in (*META_COLUMNS, "model")
    }
    meta = frame[[c for c in frame.columns if not c.startswith(_INPUT_PREFIX)]]
    return pd.concat([frame[list(inputs)].rename(columns=inputs), meta], axis=1)

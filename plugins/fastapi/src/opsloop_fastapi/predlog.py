"""The prediction log: scored rows written off the hot path, and read back through DuckDB.

A request appends one entry (:mod:`~opsloop_fastapi.entries`) to a bounded deque (O(1): no
serialization, no lock, no wake-up); the after-predict thread may hand on whole batches
instead. A writer thread wakes every ``flush_seconds``, turns them into Arrow columns and
appends them as a row group to a Parquet file under
``<home>/predictions/<model>/date=YYYY-MM-DD/``. A file is written under a hidden temporary
name and renamed when it is rotated (every ``rotate_seconds``), flushed or closed, so a
reader never sees half a file. Each writer (one per server process) owns its files, so
replicas and ``--workers`` never share one. A full deque drops the entry and counts it: a
request never waits for the disk.

Feedback (ground-truth labels sent to ``/v1/feedback``) is logged the same way under
``<home>/feedback/<model>/``; :func:`read_log` joins it by request id and row (the column
contract both stores' readers share is :mod:`~opsloop_fastapi.logframe`).

``log_format = "postgres"`` sends both to one PostgreSQL table instead (shared by every
replica); :mod:`~opsloop_fastapi.pglog` holds that store and its reader.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from opsloop_fastapi.pglog import PostgresStore

from opsloop_fastapi.entries import (
    RefTable,
    batch_table,
    build_batches,
    is_entry,
    merge_batches,
    rows_of,
    table_key,
)
from opsloop_fastapi.logframe import SERVED_ROLES, log_frame, memory_duckdb
from opsloop_fastapi.threadname import daemon_thread

logger = logging.getLogger("opsloop_fastapi.predlog")

LogFormat = Literal["parquet", "jsonl", "postgres"]
Compression = Literal["lz4", "zstd", "snappy", "none"]


class FeedbackEntry(NamedTuple):
    """A ground-truth label for one row of an earlier prediction."""

    ts: float
    request_id: str
    row: int
    label: Any
    model: str


def model_dir(root: Path, model: str) -> Path:
    """The folder of one model's log; the name is made safe for a path."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model).lstrip(".") or "_"
    return root / safe


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


class _OpenFile:
    """A Parquet file being appended to under a temporary name."""

    def __init__(self, writer: Any, tmp: Path, final: Path, day: str) -> None:
        self.writer = writer
        self.tmp = tmp
        self.final = final
        self.day = day
        self.opened = time.monotonic()

    def close(self) -> None:
        self.writer.close()
        os.replace(self.tmp, self.final)


class _Writer:
    """A bounded queue drained by one daemon thread in batches (shared by both logs)."""

    def __init__(
        self,
        directory: Path,
        *,
        fmt: LogFormat,
        compression: Compression = "lz4",
        queue_size: int,
        batch_rows: int,
        flush_seconds: float,
        rotate_seconds: float,
        on_dropped: Callable[[int], None] | None,
        on_written: Callable[[int], None] | None,
        name: str,
        store: PostgresStore | None = None,
    ) -> None:
        if fmt == "postgres" and store is None:
            raise ValueError("log format 'postgres' needs a store (opsloop_fastapi.pglog)")
        self.directory = directory
        self.fmt = fmt
        self.store = store  # fmt "postgres": the table the rows go to
        self.compression = compression
        self.queue_size = queue_size
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.rotate_seconds = rotate_seconds
        self.dropped_rows = 0
        self.written_rows = 0
        self._deque: collections.deque[Any] = collections.deque()
        self._on_dropped = on_dropped
        self._on_written = on_written
        self._writer_id = f"{os.getpid()}-{int(time.time() * 1000):x}-{secrets.token_hex(3)}"
        self._seq = 0
        self._name = name
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # start/stop
        self._io = threading.Lock()  # one drain at a time
        self._wake = threading.Event()
        self._stopping = False
        self._open: dict[Any, _OpenFile] = {}
        self._pending: list[tuple[str, Any, pa.Table]] = []
        self._pending_rows = 0

    # ------------------------------------------------------------------ producer side
    def submit(self, entry: Any, rows: int | None = None) -> bool:
        """Queue ``entry`` without blocking; False (and counted) when the queue is full."""
        if len(self._deque) >= self.queue_size:
            self._dropped(self._rows(entry) if rows is None else rows)
            return False
        self._deque.append(entry)
        return True

    def depth(self) -> int:
        return len(self._deque)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        with self._lock:
            if self.running:
                return
            self._stopping = False
            self._thread = daemon_thread(self._run, self._name)
            self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued so far and make it readable; False on timeout."""
        deadline = time.monotonic() + timeout
        if not self._io.acquire(timeout=timeout):
            return False
        try:
            self._drain(close=True, deadline=deadline)
        finally:
            self._io.release()
        return self.depth() == 0

    def close(self, timeout: float = 10.0) -> bool:
        """Write what is queued, close the files and stop the writer; False on timeout."""
        with self._lock:
            thread = self._thread
            self._stopping = True
        self._wake.set()
        if thread is not None and thread.is_alive():
            thread.join(timeout)
            if thread.is_alive():
                logger.error("%s: writer did not drain its queue in %.0f s", self._name, timeout)
                return False
        done = self.flush(timeout)
        if self.store is not None:
            self.store.close()
        return done

    # ------------------------------------------------------------------ writer side
    def _dropped(self, rows: int) -> None:
        self.dropped_rows += rows
        if self._on_dropped is not None:
            self._on_dropped(rows)

    def _written(self, rows: int) -> None:
        self.written_rows += rows
        if self._on_written is not None:
            self._on_written(rows)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._io:
                self._drain(close=False, deadline=None)

    def _drain(self, *, close: bool, deadline: float | None) -> None:
        """Convert and write everything queued (flush, close)."""
        self._convert(deadline=deadline)
        self._write_pending()
        self._rotate(force=close)

    def _convert(self, *, deadline: float | None) -> None:
        """Queued items to Arrow tables, split by day (written by :meth:`_write_pending`)."""
        pop = self._deque.popleft
        while self._deque:
            batch = [pop() for _ in range(min(len(self._deque), self.batch_rows))]
            try:
                tables = list(self._tables(batch))
            except Exception:
                lost = sum(self._rows(e) for e in batch)
                logger.exception("%s: could not convert %d rows", self._name, lost)
                self._dropped(lost)
                continue
            for key, table in tables:
                for day, part in _by_day(table):
                    self._keep(day, key, part)
            if deadline is not None and time.monotonic() > deadline:
                break

    def _keep(self, day: str, key: Any, table: pa.Table) -> None:
        self._pending.append((day, key, table))
        self._pending_rows += table.num_rows

    def _write_pending(self) -> None:
        """Append the converted tables to their files: one row group per file and write."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        groups: dict[tuple[str, Any], list[pa.Table]] = {}
        for day, key, table in pending:
            groups.setdefault((day, key), []).append(table)
        for (day, key), tables in groups.items():
            for table in _same_schema_runs(tables):
                self._append(day, key, table)

    def _append(self, day: str, key: Any, table: pa.Table) -> None:
        rows = table.num_rows
        try:
            if self.fmt == "parquet":
                self._append_parquet(day, key, table)
            elif self.store is not None:
                self.store.append(table)
            else:
                self._append_jsonl(day, table)
        except Exception:
            where = self.directory if self.store is None else self.store  # never the password
            logger.exception("%s: could not write %d rows to %s", self._name, rows, where)
            self._dropped(rows)
            return
        self._written(rows)

    @staticmethod
    def _rows(entry: Any) -> int:
        return rows_of(entry)

    def _tables(self, entries: list[Any]) -> Iterable[tuple[Any, pa.Table]]:
        raise NotImplementedError

    def _append_parquet(self, day: str, key: Any, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        handle = self._open.get(key)
        if handle is not None and (handle.day != day or handle.writer.schema != table.schema):
            self._open.pop(key).close()
            handle = None
        if handle is None:
            folder = self.directory / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            final = folder / f"part-{self._writer_id}-{self._seq:06d}.parquet"
            tmp = folder / f".{final.name}.tmp"
            strings = [f.name for f in table.schema if f.type == "string"]
            writer = pq.ParquetWriter(
                tmp,
                table.schema,
                compression=self.compression,
                use_dictionary=[n for n in strings if n != "request_id"],
                write_statistics=[
                    n for n in ("logged_at", "received_at") if n in table.schema.names
                ],
            )
            handle = _OpenFile(writer, tmp, final, day)
            self._open[key] = handle
        handle.writer.write_table(table)

    def _append_jsonl(self, day: str, table: pa.Table) -> None:
        folder = self.directory / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = table.to_pandas()
        if "logged_at" in frame.columns:
            frame["logged_at"] = frame["logged_at"].map(lambda t: t.isoformat())
        if "received_at" in frame.columns:
            frame["received_at"] = frame["received_at"].map(lambda t: t.isoformat())
        text = frame.to_json(orient="records", lines=True, double_precision=15)
        if not text.endswith("\n"):
            text += "\n"
        # one write() per batch: a reader can only ever see a torn last line
        with open(folder / f"part-{self._writer_id}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()

    def _rotate(self, *, force: bool) -> None:
        now = time.monotonic()
        today = _day(time.time())
        for key, handle in list(self._open.items()):
            if force or handle.day != today or now - handle.opened >= self.rotate_seconds:
                self._open.pop(key)
                try:
                    handle.close()
                except Exception:
                    logger.exception("%s: could not close %s", self._name, handle.tmp)


class PredictionLog(_Writer):
    """Scored requests, one row per scored input row."""

    def __init__(
        self,
        directory: Path,
        *,
        fmt: LogFormat = "parquet",
        compression: Compression = "lz4",
        queue_size: int = 50_000,
        batch_rows: int = 10_000,
        flush_seconds: float = 0.5,
        rotate_seconds: float = 60.0,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
        store: PostgresStore | None = None,
    ) -> None:
        super().__init__(
            directory,
            fmt=fmt,
            compression=compression,
            queue_size=queue_size,
            batch_rows=batch_rows,
            flush_seconds=flush_seconds,
            rotate_seconds=rotate_seconds,
            on_dropped=on_dropped,
            on_written=on_written,
            name=f"opsloop-predlog-{directory.name}",
            store=store,
        )
        self.refs = RefTable()

    def submit_many(self, items: list[Any]) -> None:
        """Queue entries or batches (from the after-predict thread); full: dropped, counted."""
        room = self.queue_size - len(self._deque)
        if room < len(items):
            lost = items[max(0, room) :]
            self._dropped(sum(rows_of(i) for i in lost))
            items = items[: max(0, room)]
        self._deque.extend(items)

    def _tables(self, items: list[Any]) -> Iterable[tuple[Any, pa.Table]]:
        entries = [i for i in items if is_entry(i)]
        batches = [i for i in items if not is_entry(i)]
        if entries:
            built, failed = build_batches(entries, self.refs)
            batches += built
            if failed:
                self._dropped(sum(rows_of(e) for e in failed))
        for batch in merge_batches(batches):
            yield table_key(batch), batch_table(batch)


class FeedbackLog(_Writer):
    """Ground-truth labels sent to /v1/feedback."""

    def __init__(self, directory: Path, **options: Any) -> None:
        super().__init__(directory, name=f"opsloop-feedback-{directory.name}", **options)

    def _tables(self, entries: list[FeedbackEntry]) -> Iterable[tuple[Any, pa.Table]]:
        import pyarrow as pa

        table = pa.table(
            {
                "request_id": pa.array([e.request_id for e in entries], pa.string()),
                "row": pa.array([e.row for e in entries], pa.int64()),
                "label_json": pa.array([json.dumps(e.label) for e in entries], pa.string()),
                "received_at": pa.array(
                    [int(e.ts * 1_000_000) for e in entries], pa.timestamp("us", tz="UTC")
                ),
                "model": pa.array([e.model for e in entries], pa.string()),
            }
        )
        yield "feedback", table


def _same_schema_runs(tables: list[pa.Table]) -> Iterable[pa.Table]:
    """Consecutive tables with one schema, concatenated (a schema change starts a run)."""
    import pyarrow as pa

    run: list[pa.Table] = []
    for table in tables:
        if run and table.schema != run[0].schema:
            yield pa.concat_tables(run) if len(run) > 1 else run[0]
            run = []
        run.append(table)
    if run:
        yield pa.concat_tables(run) if len(run) > 1 else run[0]


def _by_day(table: pa.Table) -> list[tuple[str, pa.Table]]:
    """A table split by the UTC day of its ``logged_at`` (or ``received_at``) column."""
    import numpy as np
    import pyarrow as pa

    column = "logged_at" if "logged_at" in table.column_names else "received_at"
    micros = table.column(column).cast("int64").to_numpy()
    if not len(micros):
        return []
    days = micros // 86_400_000_000
    if days.min() == days.max():
        return [(_day(float(micros[0]) / 1e6), table)]
    return [
        (_day(float(day) * 86_400), table.filter(pa.array(days == day, pa.bool_())))
        for day in np.unique(days)
    ]


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


def _files(directory: Path, first_day: str, suffix: str) -> list[Path]:
    out: list[Path] = []
    if not directory.is_dir():
        return out
    for folder in sorted(directory.glob("date=*")):
        if folder.name[5:] < first_day:
            continue
        out += sorted(p for p in folder.glob(f"part-*{suffix}") if p.is_file())
    return out


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def read_log(
    directory: Path,
    model: str,
    since: datetime | None = None,
    *,
    feedback_dir: Path | None = None,
    roles: tuple[str, ...] | None = SERVED_ROLES,
) -> pd.DataFrame | None:
    """Logged rows of ``model`` at or after ``since``, with feedback labels; None: no log.

    ``roles`` keeps the rows answered to clients (champion, challenger) by default; pass
    None to include the shadow model's rows as well.
    """
    if not directory.is_dir():
        return None
    first_day = since.date().isoformat() if since else ""
    frames: list[pd.DataFrame] = []
    parquet = _files(directory, first_day, ".parquet")
    if parquet:
        frames.append(_read_parquet(parquet, since))
    for file in _files(directory, first_day, ".jsonl"):
        frames.append(_read_jsonl(file))
    feedback = None if feedback_dir is None else functools.partial(read_feedback, feedback_dir)
    return log_frame(frames, model, since, roles, feedback)


def _read_parquet(files: list[Path], since: datetime | None) -> pd.DataFrame:
    con = memory_duckdb()
    try:
        # date=YYYY-MM-DD folders are not data: without hive_partitioning = false DuckDB
        # would add a "date" column, which monitoring would take for a feature
        query = (
            f"SELECT * FROM read_parquet({_sql_list(files)}, union_by_name = true, "
            "hive_partitioning = false)"
        )
        if since is not None:
            return con.execute(query + " WHERE logged_at >= ?", [since]).df()
        return con.execute(query).df()
    finally:
        con.close()


def _read_jsonl(file: Path) -> pd.DataFrame:
    import io

    import pandas as pd

    text = file.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # another process is appending a batch right now
        text = text[: text.rfind("\n") + 1]
    if not text:
        return pd.DataFrame()
    return pd.read_json(io.StringIO(text), lines=True, dtype=False, convert_dates=False)


def read_feedback(directory: Path) -> pd.DataFrame:
    """Every label sent for a model: request_id, row, label, received_at (newest wins)."""
    import pandas as pd

    parquet = _files(directory, "", ".parquet")
    frames: list[pd.DataFrame] = []
    if parquet:
        con = memory_duckdb()
        try:
            frames.append(
                con.execute(
                    f"SELECT request_id, row, label_json, received_at FROM read_parquet("
                    f"{_sql_list(parquet)}, union_by_name = true, hive_partitioning = false)"
                ).df()
            )
        finally:
            con.close()
    for file in _files(directory, "", ".jsonl"):
        frames.append(_read_jsonl(file))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "label", "received_at"])
    frame = pd.concat(frames, ignore_index=True)
    frame["received_at"] = pd.to_datetime(frame["received_at"], utc=True, format="ISO8601")
    frame = frame.sort_values("received_at", kind="stable")
    frame = frame.drop_duplicates(["request_id", "row"], keep="last")
    frame["label"] = [json.loads(v) for v in frame.pop("label_json")]
    return frame[["request_id", "row", "label", "received_at"]].reset_index(drop=True)

"""The record store: append-only operational records in SQLite (WAL).

SQLite, not the DuckDB warehouse, because several processes write records at once (a
server, the CLI, a notebook) and DuckDB allows one writing process per file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from opsloop.errors import OpsloopError
from opsloop.records import Record

R = TypeVar("R", bound=Record)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_kind ON records(kind, created_at);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;
"""


class RecordStore:
    """Append-only store of :class:`~opsloop.records.Record` objects."""

    def __init__(self, path: Path | None) -> None:
        """Open (or create) the store at ``path``; None keeps the records in memory only."""
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        where = ":memory:" if path is None else path
        self._db = sqlite3.connect(where, timeout=30, isolation_level=None, check_same_thread=False)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, record: Record) -> Record:
        """Store a record once; storing the same id twice is an error."""
        try:
            self._db.execute(
                "INSERT INTO records (id, kind, created_at, body) VALUES (?, ?, ?, ?)",
                (record.id, record.kind, record.created_at, record.to_json()),
            )
        except sqlite3.IntegrityError:
            raise OpsloopError(
                f"record {record.id} already exists; records are written once"
            ) from None
        return record

    def get(self, record_id: str) -> Record:
        row = self._db.execute("SELECT body FROM records WHERE id = ?", (record_id,)).fetchone()
        if row is None:
            raise OpsloopError(f"no record with id '{record_id}'")
        return Record.from_dict(json.loads(row[0]))

    def list(self, cls: type[R], limit: int | None = None) -> list[R]:
        """Records of one type, oldest first."""
        sql = "SELECT body FROM records WHERE kind = ? ORDER BY created_at, id"
        rows = self._db.execute(sql, (cls.kind,)).fetchall()
        out = [Record.from_dict(json.loads(r[0])) for r in rows]
        items = [r for r in out if isinstance(r, cls)]
        return items[-limit:] if limit else items

    def iter_all(self) -> Iterator[Record]:
        for (body,) in self._db.execute("SELECT body FROM records ORDER BY created_at, id"):
            yield Record.from_dict(json.loads(body))

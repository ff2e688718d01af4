"""The record store: append-only operational records in SQLite (WAL).

SQLite, not the DuckDB warehouse, because several processes write records at once (a
server, the CLI, a notebook) and DuckDB allows one writing process per file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
CREATE TABLE IF NOT EXISTS claims (
    key TEXT NOT NULL,
    slot TEXT NOT NULL,
    owner TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (key, slot)
);
CREATE TRIGGER IF NOT EXISTS claims_no_update BEFORE UPDATE ON claims
BEGIN SELECT RAISE(ABORT, 'claims are append-only'); END;
CREATE TRIGGER IF NOT EXISTS claims_no_delete BEFORE DELETE ON claims
BEGIN SELECT RAISE(ABORT, 'claims are append-only'); END;
"""


@dataclass(frozen=True)
class Claim:
    """A slot of some work (a schedule's due time) taken by one process, once."""

    key: str
    slot: str
    owner: str
    claimed_at: str


_Claims = list[Claim]


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
        self._claim_lock = threading.Lock()

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

    # ------------------------------------------------------------------ claims
    def claim(
        self, key: str, choose: Callable[[str | None], str | None], owner: str, claimed_at: str
    ) -> str | None:
        """Take the next slot of ``key`` so that no other process ever takes it too.

        In one write transaction (``BEGIN IMMEDIATE``: a second process waits for the
        first), ``choose`` gets the newest slot already claimed under ``key`` (None when
        none) and returns the slot to claim now, or None; that slot is stored and
        returned. Slots are strings that sort in time order (ISO 8601 UTC). A slot claimed
        twice is refused by the table's key as well.
        """
        with self._claim_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT max(slot) FROM claims WHERE key = ?", (key,)
                ).fetchone()
                slot = choose(row[0] if row else None)
                if slot is not None:
                    self._db.execute(
                        "INSERT INTO claims (key, slot, owner, claimed_at) VALUES (?, ?, ?, ?)",
                        (key, slot, owner, claimed_at),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return slot

    def claims(self, key: str) -> _Claims:
        """Every slot claimed under ``key``, oldest first."""
        rows = self._db.execute(
            "SELECT key, slot, owner, claimed_at FROM claims WHERE key = ? ORDER BY slot", (key,)
        ).fetchall()
        return [Claim(*row) for row in rows]

    def last_claim(self, key: str) -> Claim | None:
        """The newest slot claimed under ``key``, or None."""
        row = self._db.execute(
            "SELECT key, slot, owner, claimed_at FROM claims WHERE key = ? "
            "ORDER BY slot DESC LIMIT 1",
            (key,),
        ).fetchone()
        return Claim(*row) if row else None

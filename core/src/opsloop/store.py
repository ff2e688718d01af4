"""The record store: append-only operational records in SQLite (WAL).

SQLite, not the DuckDB warehouse, because several processes write records at once (a
server, the CLI, a notebook) and DuckDB allows one writing process per file.
"""

from __future__ import annotations

import contextlib
import hashlib
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
CREATE TABLE IF NOT EXISTS open_incidents (
    dedup_key TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: The append-only triggers, as the schema creates them (``opsloop doctor`` compares).
TRIGGERS = ("records_no_update", "records_no_delete")


def row_hash(record_id: str, kind: str, created_at: str, body: str) -> str:
    """The SHA-256 an audit entry commits to for one stored record row."""
    text = "\x1f".join((record_id, kind, created_at, body))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_hash(record: Record) -> str:
    """The SHA-256 of the row :meth:`RecordStore.add` stores for ``record``."""
    return row_hash(record.id, record.kind, record.created_at, record.to_json())


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
        self._lock = threading.RLock()
        self._depth = 0
        self._after_commit: list[Callable[[], object]] = []
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        #: the append-only triggers were missing when this store was opened (someone
        #: dropped them); they are recreated, and ``opsloop doctor`` reports it
        self.triggers_were_missing = self._triggers_missing()
        self._db.executescript(_SCHEMA)
        self._claim_lock = threading.Lock()
        if self.triggers_were_missing:
            from opsloop.records import utcnow

            self._db.execute(
                "INSERT OR IGNORE INTO store_meta (key, value) VALUES (?, ?)",
                ("triggers_missing_at", utcnow()),
            )

    def meta(self, key: str) -> str:
        """A value the store keeps about itself ("" when unset)."""
        row = self._db.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else ""

    def _triggers_missing(self) -> bool:
        rows = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')"
        ).fetchall()
        names = {r[0] for r in rows}
        return "records" in names and not all(t in names for t in TRIGGERS)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the write lock is taken first, so two
        processes cannot both read-then-write); nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._depth = 0
                self._after_commit.clear()
                self._db.execute("ROLLBACK")
                raise
            self._depth = 0
            callbacks, self._after_commit = self._after_commit, []
            self._db.execute("COMMIT")
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` once the current transaction commits (now, outside one)."""
        with self._lock:
            if self._depth:
                self._after_commit.append(callback)
                return
        callback()

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

    def rows(self) -> Iterator[tuple[str, str, str]]:
        """(id, kind, row hash) of every stored row, for the audit cross-check."""
        for rid, kind, created_at, body in self._db.execute(
            "SELECT id, kind, created_at, body FROM records"
        ):
            yield rid, kind, row_hash(rid, kind, created_at, body)

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

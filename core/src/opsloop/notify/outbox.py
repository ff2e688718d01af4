"""The notification outbox: every delivery owed to a notifier, kept until it is made.

Rows live in their own tables of the project's record store (the same SQLite file as the
records, in WAL mode), so an alert raised while a notifier is down survives the process
that raised it and is delivered by the next one that drains the outbox.

Exactly once per notifier and event:

* a row's ``key`` (``<notifier>:<event id>``) is unique: enqueuing the same event twice
  adds nothing;
* one process at a time delivers a notifier's rows: it holds that notifier's *lease*, taken
  and renewed by a single conditional UPSERT, so two draining processes never both send
  a row; rows go out in the order they were enqueued (a trigger before its resolve);
* a row is marked delivered only by the lease holder, in the same statement that checks it
  still holds the lease.

The one gap no local bookkeeping closes: a process that dies after the receiver accepted a
notification but before the row was marked is followed by a second send with the same
idempotency key (the webhook's ``X-Opsloop-Delivery``, PagerDuty's ``dedup_key``, the
e-mail's ``Message-ID``), which a receiver uses to drop the repeat.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from opsloop.records import utcnow

Status = Literal["pending", "delivered", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    notifier TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox(notifier, status, seq);
CREATE TABLE IF NOT EXISTS notify_leases (
    notifier TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxRow:
    """One delivery owed to one notifier. ``body`` is the notification's JSON (no secret)."""

    seq: int
    key: str
    notifier: str
    event_id: str
    event: str
    body: str
    status: Status
    attempts: int
    next_at: float
    last_error: str
    created_at: str
    delivered_at: str | None

    @property
    def notification(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["notification"] = json.loads(data.pop("body"))
        return data


_COLUMNS = (
    "seq, key, notifier, event_id, event, body, status, attempts, next_at, last_error, "
    "created_at, delivered_at"
)


def make_owner() -> str:
    """A lease owner id unique to this process and call: host, pid, random."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


class Outbox:
    """The outbox tables in the SQLite file at ``path`` (None: in memory, for a detached
    project)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        where = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(where, timeout=30, isolation_level=None, check_same_thread=False)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ writing
    def enqueue(
        self, notifier: str, event_id: str, event: str, body: dict[str, Any], *, now: float
    ) -> bool:
        """Add the delivery of ``event_id`` to ``notifier``; False if it was already there."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO notify_outbox (key, notifier, event_id, event, body, next_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                f"{notifier}:{event_id}",
                notifier,
                event_id,
                event,
                json.dumps(body, sort_keys=True),
                now,
                utcnow(),
            ),
        )
        return cur.rowcount == 1

    def claim(self, notifier: str, owner: str, *, now: float, lease: float) -> bool:
        """Take or renew ``notifier``'s lease for ``lease`` seconds; False if another
        process holds it. One conditional UPSERT, so two processes cannot both win."""
        self._db.execute(
            "INSERT INTO notify_leases (notifier, owner, until) VALUES (?, ?, ?) "
            "ON CONFLICT(notifier) DO UPDATE SET owner = excluded.owner, until = excluded.until"
            " WHERE notify_leases.owner = excluded.owner OR notify_leases.until < ?",
            (notifier, owner, now + lease, now),
        )
        row = self._db.execute(
            "SELECT owner FROM notify_leases WHERE notifier = ?", (notifier,)
        ).fetchone()
        return row is not None and row[0] == owner

    def release(self, notifier: str, owner: str) -> None:
        self._db.execute(
            "DELETE FROM notify_leases WHERE notifier = ? AND owner = ?", (notifier, owner)
        )

    def next_pending(self, notifier: str) -> OutboxRow | None:
        """The oldest pending row of ``notifier`` (rows go out in enqueue order)."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE notifier = ? AND status = 'pending' "
            "ORDER BY seq LIMIT 1",
            (notifier,),
        ).fetchone()
        return OutboxRow(*row) if row else None

    def _finish(self, seq: int, owner: str, sql: str, args: tuple[Any, ...]) -> bool:
        """Run an UPDATE of row ``seq`` only while ``owner`` holds its notifier's lease."""
        cur = self._db.execute(
            f"UPDATE notify_outbox SET {sql} WHERE seq = ? AND status = 'pending' AND EXISTS ("
            "SELECT 1 FROM notify_leases l WHERE l.notifier = notify_outbox.notifier"
            " AND l.owner = ?)",
            (*args, seq, owner),
        )
        return cur.rowcount == 1

    def mark_delivered(self, seq: int, owner: str) -> bool:
        return self._finish(
            seq,
            owner,
            "status = 'delivered', attempts = attempts + 1, delivered_at = ?",
            (utcnow(),),
        )

    def mark_retry(self, seq: int, owner: str, error: str, next_at: float) -> bool:
        return self._finish(
            seq, owner, "attempts = attempts + 1, last_error = ?, next_at = ?", (error, next_at)
        )

    def mark_failed(self, seq: int, owner: str, error: str) -> bool:
        return self._finish(
            seq, owner, "status = 'failed', attempts = attempts + 1, last_error = ?", (error,)
        )

    def requeue_failed(self, notifier: str | None, *, now: float) -> int:
        """Put failed rows back in line (``opsloop notify flush --retry-failed``)."""
        cur = self._db.execute(
            "UPDATE notify_outbox SET status = 'pending', next_at = ? WHERE status = 'failed'"
            " AND (? IS NULL OR notifier = ?)",
            (now, notifier, notifier),
        )
        return cur.rowcount

    def prune(self, delivered_before: str) -> int:
        """Delete delivered rows delivered before the ISO time ``delivered_before``."""
        cur = self._db.execute(
            "DELETE FROM notify_outbox WHERE status = 'delivered' AND delivered_at < ?",
            (delivered_before,),
        )
        return cur.rowcount

    # ------------------------------------------------------------------ reading
    def rows(
        self, *, statuses: tuple[str, ...] = ("pending", "failed"), notifier: str | None = None
    ) -> list[OutboxRow]:
        marks = ", ".join("?" for _ in statuses)
        sql = f"SELECT {_COLUMNS} FROM notify_outbox WHERE status IN ({marks})"
        args: list[Any] = list(statuses)
        if notifier is not None:
            sql += " AND notifier = ?"
            args.append(notifier)
        return [OutboxRow(*r) for r in self._db.execute(sql + " ORDER BY seq", args)]

    def notifiers_with_pending(self) -> list[str]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT notifier FROM notify_outbox WHERE status = 'pending' GROUP BY notifier"
                " ORDER BY MIN(seq)"
            )
        ]

    def first_queued(self) -> dict[str, str]:
        """``{notifier: created_at of its oldest row}``: from when each one took events."""
        return dict(
            self._db.execute(
                "SELECT notifier, MIN(created_at) FROM notify_outbox GROUP BY notifier"
            ).fetchall()
        )

    def next_due(self) -> float | None:
        """When the earliest pending row may next be tried (None: nothing pending)."""
        row = self._db.execute(
            "SELECT MIN(next_at) FROM notify_outbox WHERE status = 'pending'"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def __iter__(self) -> Iterator[OutboxRow]:
        return iter(self.rows(statuses=("pending", "failed", "delivered")))


def backoff_delay(attempts: int, first: float, ceiling: float) -> float:
    """Seconds before attempt ``attempts + 1``: ``first`` doubled per failed attempt, capped
    at ``ceiling``, plus up to 10 % jitter so a fleet does not retry in step."""
    base = min(ceiling, first * 2.0 ** max(0, attempts - 1))
    return base * (1 + 0.1 * (os.urandom(1)[0] / 255))

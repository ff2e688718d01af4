"""The audit log: append-only JSON lines, each entry holding the hash of the one before.

``verify()`` recomputes the chain, so an edited, removed, inserted or reordered entry is
found and named. Entries are redacted before they are written: no secret ever lands here.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsloop.errors import IntegrityError, OpsloopError
from opsloop.records import new_id, utcnow
from opsloop.redact import redact

GENESIS = "0" * 64


def default_actor(configured: str = "") -> str:
    """Who acts: the configured actor, $OPSLOOP_ACTOR, else the OS user."""
    if configured:
        return configured
    if os.environ.get("OPSLOOP_ACTOR"):
        return os.environ["OPSLOOP_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    """An append-only, hash-chained audit log in one JSON-lines file."""

    def __init__(self, path: Path, actor: str = "") -> None:
        self.path = path
        self.actor = default_actor(actor)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _last(self) -> dict[str, Any] | None:
        last = None
        for last in self.entries():  # noqa: B007 - we want the final entry
            pass
        return last

    def append(
        self,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one entry (actor, action, target, before, after, time) and return it."""
        with self._locked() as fd:
            last = self._last()
            entry: dict[str, Any] = {
                "seq": (last["seq"] + 1) if last else 1,
                "id": new_id("aud"),
                "time": utcnow(),
                "actor": actor or self.actor,
                "action": action,
                "target": target,
                "before": redact(before),
                "after": redact(after),
                "detail": redact(detail or {}),
                "prev": last["hash"] if last else GENESIS,
            }
            entry["hash"] = _digest(entry)
            line = json.dumps(entry, sort_keys=True, default=str) + "\n"
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
            self._write_head(entry)
        return entry

    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    def _write_head(self, entry: dict[str, Any]) -> None:
        """Remember the newest seq and hash, so a truncated tail is found too."""
        tmp = self.head_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}))
        os.replace(tmp, self.head_path)

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry in file order; a line that is not JSON raises IntegrityError."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    raise IntegrityError(
                        f"{self.path}:{lineno}: audit entry is not valid JSON"
                    ) from None

    def verify(self) -> VerifyResult:
        """Recompute the chain; name the first entry that was edited, removed or moved."""
        prev = GENESIS
        count = 0
        try:
            for count, entry in enumerate(self.entries(), 1):
                seq = entry.get("seq")
                if seq != count:
                    return VerifyResult(
                        False,
                        count,
                        count,
                        f"expected entry {count}, found entry {seq}"
                        " (an entry was removed, inserted or reordered)",
                    )
                if entry.get("prev") != prev:
                    return VerifyResult(
                        False, count, count, "its link to the previous entry is broken"
                    )
                if _digest(entry) != entry.get("hash"):
                    return VerifyResult(False, count, count, "its content was edited")
                prev = entry["hash"]
        except IntegrityError as exc:
            return VerifyResult(False, count, count + 1, str(exc))
        if self.head_path.exists():
            try:
                head = json.loads(self.head_path.read_text())
            except ValueError:
                head = {"seq": -1, "hash": ""}
            if head.get("seq") != count or head.get("hash") != prev:
                return VerifyResult(
                    False,
                    count,
                    count + 1 if head.get("seq", 0) > count else count,
                    f"the log ends at entry {count} but entry {head.get('seq')} was written"
                    " (entries were removed from the end, or the head was altered)",
                )
        return VerifyResult(True, count)

    def require_valid(self) -> None:
        result = self.verify()
        if not result.ok:
            raise OpsloopError(
                f"audit log {self.path}: entry {result.bad_seq} is bad: {result.reason}",
                exit_code=1,
            )

"""The audit log: append-only JSON lines, each entry chained to the one before and sealed
with an HMAC-SHA256 whose key is kept outside the project folder.

The anchor is CloudTrail's log-file integrity validation: chained digests signed with a key
the writer of the files does not hold. Here the files live in the project folder, and the
key lives in the user's opsloop home (``~/.config/opsloop/keys/<log id>``, 0600) or comes
from ``$OPSLOOP_AUDIT_KEY`` / ``[audit] key_file`` for teams. Someone who can write the
project folder but cannot read the key cannot edit an entry and re-seal the chain, cut the
tail and rewrite the head, or swap in a log of their own: ``verify()`` names what they did.

Each keyed line is the entry's canonical JSON (sorted keys, no spaces, ASCII) with
``"hash"`` appended last; the HMAC covers exactly those bytes, so verifying a line costs
one ``json.loads`` and one HMAC. Appends read only the file's tail, so an append costs the
same at a million entries as at ten. A torn last line (a crash mid-append) is quarantined
by the next append, which records an ``audit.recovered`` entry saying so.

Logs written before keying (plain SHA-256, no ``log`` field) stay readable: the first keyed
append adds an ``audit.keyed`` entry, and ``verify()`` reports "unkeyed up to entry N".
Entries are redacted before they are written: no secret ever lands here.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import getpass
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsloop.errors import IntegrityError, OpsloopError
from opsloop.records import new_id, utcnow
from opsloop.redact import redact

GENESIS = "0" * 64
KEY_ENV = "OPSLOOP_AUDIT_KEY"
HOME_ENV = "OPSLOOP_CONFIG_HOME"
_HASH_SUFFIX = len(',"hash":"') + 64 + len('"}')


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


def user_home(environ: Mapping[str, str] | None = None) -> Path:
    """The user's opsloop home (keys, audit checkpoints): ``$OPSLOOP_CONFIG_HOME``, else
    ``$XDG_CONFIG_HOME/opsloop``, else ``~/.config/opsloop``. Never inside a project."""
    env = os.environ if environ is None else environ
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser()
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]).expanduser() / "opsloop"
    return Path.home() / ".config" / "opsloop"


def _legacy_digest(entry: dict[str, Any]) -> str:
    """The digest of an entry written before keying: plain SHA-256 of its canonical JSON."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode("ascii")


def _mac(key: bytes, data: bytes) -> str:
    return hmac.digest(key, data, "sha256").hex()


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key, so a log names the key that sealed it."""
    return _mac(key, b"opsloop audit key id")[:16]


def _seal(key: bytes, body: dict[str, Any]) -> tuple[bytes, str]:
    """(the line to write, its hash): canonical JSON, then ``"hash"`` appended last.

    The hash is HMAC-SHA256 over the previous entry's hash and the canonical bytes up to
    the closing brace, so a line checks without being parsed: its bytes and the hash
    before it are all it needs.
    """
    data = _canonical(body)[:-1]  # without its closing brace: what the line starts with
    digest = _mac(key, str(body["prev"]).encode("ascii") + data)
    return data + b',"hash":"' + digest.encode("ascii") + b'"}\n', digest


class _LineMac:
    """HMAC-SHA256 of keyed lines with the key's pads hashed once (RFC 2104 by hand: the
    one-shot ``hmac.digest`` costs twice as much per line under OpenSSL 3)."""

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def ok(self, line: bytes, prev: bytes) -> bool:
        if len(line) <= _HASH_SUFFIX + 1 or line[-_HASH_SUFFIX - 1 : -_HASH_SUFFIX + 8] != (
            b',"hash":"'
        ):
            return False
        inner = self.inner.copy()
        inner.update(prev)
        inner.update(memoryview(line)[: -_HASH_SUFFIX - 1])
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode("ascii") == line[-67:-3]


@dataclass(frozen=True)
class AuditKeys:
    """Where the audit key comes from: ``$OPSLOOP_AUDIT_KEY`` (hex), ``[audit] key_file``,
    else one key per log in the user's opsloop home, made on the log's first append."""

    home: Path
    env_key: str = ""
    key_file: Path | None = None

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, key_file: str | Path = ""
    ) -> AuditKeys:
        env = os.environ if environ is None else environ
        return cls(
            home=user_home(env),
            env_key=env.get(KEY_ENV, "").strip(),
            key_file=Path(key_file).expanduser() if key_file else None,
        )

    def where(self, log_id: str) -> str:
        """Where the key of ``log_id`` is looked for, for messages."""
        if self.env_key:
            return f"${KEY_ENV}"
        if self.key_file is not None:
            return str(self.key_file)
        return str(self.home / "keys" / log_id)

    def load(self, log_id: str) -> bytes | None:
        """The key of ``log_id``, or None when there is none where it is looked for."""
        if self.env_key:
            return _parse_key(self.env_key, f"${KEY_ENV}")
        path = self.key_file if self.key_file is not None else self.home / "keys" / log_id
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise OpsloopError(f"cannot read the audit key {path}: {exc}") from None
        return _parse_key(text, str(path))

    def load_or_create(self, log_id: str) -> bytes:
        """The key of ``log_id``; a new random key (0600, in a 0700 folder) if there is none
        and no key is configured. A configured key that is missing is an error."""
        key = self.load(log_id)
        if key is not None:
            return key
        if self.key_file is not None:
            raise OpsloopError(
                f"the audit key file {self.key_file} ([audit] key_file) does not exist; "
                "create it with `python -c 'import secrets; print(secrets.token_hex(32))' > "
                f"{self.key_file} && chmod 600 {self.key_file}`"
            )
        folder = self.home / "keys"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        path = folder / log_id
        key = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
        return key

    def checkpoint_path(self, log_path: Path) -> Path:
        """The copy of the head kept outside the project, named after the log's real path."""
        real = str(Path(os.path.realpath(log_path)))
        return self.home / "audit-heads" / (hashlib.sha256(real.encode()).hexdigest()[:32])


def _parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise OpsloopError(
            f"the audit key in {where} is not at least 32 hex digits; make one with "
            "`python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


@dataclass(frozen=True)
class VerifyResult:
    """What :meth:`AuditLog.verify` found. ``bad_seq`` names the first bad entry (or, for a
    line that is not an entry, ``bad_line`` its line number)."""

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str = ""
    bad_line: int | None = None
    unkeyed: int = 0  # leading entries written before the log was keyed
    log_id: str = ""
    warnings: list[str] = field(default_factory=list)
    #: record id -> (sha256 the entry committed to, seq), when asked for
    records: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: the ``records`` detail of the ``audit.keyed`` entry: records stored before keying
    records_before: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for a person."""
        if not self.ok:
            if self.bad_line:
                return f"line {self.bad_line} is bad: {self.reason}"
            if self.bad_seq:
                return f"entry {self.bad_seq} is bad: {self.reason}"
            return self.reason
        if self.entries == 0:
            return "empty (no entry yet)"
        text = f"{self.entries} entries, chain intact"
        if self.unkeyed == self.entries:
            return text + " (unkeyed: written before keying; sealed by the next append)"
        if self.unkeyed:
            text += f" (unkeyed up to entry {self.unkeyed}: written before keying)"
        return text + f", keyed (log {self.log_id})"


@dataclass
class _Scan:
    """What :meth:`AuditLog.verify` has found so far."""

    head: dict[str, Any] | None
    checkpoint: dict[str, Any] | None
    collect_records: bool
    count: int = 0
    unkeyed: int = 0
    log_id: str = ""
    key: bytes = b""
    warnings: list[str] = field(default_factory=list)
    records: dict[str, tuple[str, int]] = field(default_factory=dict)
    records_before: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)

    @property
    def marks(self) -> dict[str, int | None]:
        return {"head": _seq_of(self.head), "checkpoint": _seq_of(self.checkpoint)}

    def bad(self, reason: str, *, line: int | None = None, entry: bool = True) -> VerifyResult:
        seq = self.count if entry else None
        return VerifyResult(
            False, self.count, seq, reason, line, self.unkeyed, self.log_id, self.warnings
        )


_RECORD = re.compile(rb',"record":\{"id":"([^"\\]*)","kind":"[^"\\]*","sha256":"([0-9a-f]{64})"\}')


def _collect_line(raw: bytes, scan: _Scan) -> None:
    """The record a sealed canonical line commits to, read without parsing the line (the
    top-level ``record`` is its last object: only ``seq``, ``target`` and ``time`` follow)."""
    at = raw.rfind(b',"record":{"id":"')
    found = _RECORD.match(raw, at) if at != -1 else None
    if found is not None:
        scan.records[found[1].decode("utf-8")] = (found[2].decode("ascii"), scan.count)
    elif b'.failed","actor":' in raw:
        _collect_record(json.loads(raw), scan.count, scan.records)


def _mark(scan: _Scan, marks: dict[str, int], digest: str) -> None:
    for name, mark in marks.items():
        if mark == scan.count:
            scan.seen[name] = digest


@dataclass
class _Tail:
    """What an append finds at the end of the file."""

    last: dict[str, Any] | None
    last_line: bytes
    end: int  # offset just after the last complete line
    torn: bytes  # bytes after it (a crash mid-append), quarantined by the next append


class AuditLog:
    """An append-only, chained, keyed audit log in one JSON-lines file."""

    def __init__(
        self,
        path: Path,
        actor: str = "",
        *,
        keys: AuditKeys | None = None,
        on_keyed: Callable[[], dict[str, Any]] | None = None,
        file_mode: int = 0o600,
    ) -> None:
        self.path = path
        #: the log, head and quarantine files' mode (0660 for a group-shared project)
        self.file_mode = file_mode
        self.actor = default_actor(actor)
        self.keys = keys if keys is not None else AuditKeys.from_environ()
        #: detail for the ``audit.keyed`` entry (the project commits its records here)
        self.on_keyed = on_keyed
        self._key_cache: dict[str, bytes] = {}
        self._macs: dict[bytes, _LineMac] = {}

    # ------------------------------------------------------------------ paths
    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    @functools.cached_property
    def checkpoint_path(self) -> Path:
        """The sealed copy of the head kept in the user's opsloop home."""
        return self.keys.checkpoint_path(self.path)

    @property
    def quarantine_path(self) -> Path:
        return self.path.with_name(self.path.name + ".torn")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
        try:
            fd = os.open(self.path, flags, self.file_mode)
        except FileNotFoundError:  # the folder is new
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, self.file_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _mac(self, key: bytes) -> _LineMac:
        mac = self._macs.get(key)
        if mac is None:
            mac = self._macs[key] = _LineMac(key)
        return mac

    def _key(self, log_id: str, *, create: bool = False) -> bytes | None:
        if log_id in self._key_cache:
            return self._key_cache[log_id]
        key = self.keys.load_or_create(log_id) if create else self.keys.load(log_id)
        if key is not None:
            self._key_cache[log_id] = key
        return key

    # ------------------------------------------------------------------ append
    def append(
        self,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
        actor: str | None = None,
        detail: dict[str, Any] | None = None,
        record: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one entry (actor, action, target, before, after, time) and return it.

        ``record`` ({id, kind, sha256}) commits the entry to a stored record, so an edited
        or deleted record row is found by ``opsloop audit verify``. Reads only the tail.
        """
        who = actor or self.actor
        with self._locked() as fd:
            tail = self._read_tail(fd)
            head = self._read_head()
            pending: list[tuple[str, str, dict[str, Any]]] = []
            keyed: dict[str, Any] = {}
            if tail.torn:
                pending.append(("audit.recovered", "audit", self._quarantine(fd, tail)))
            last = tail.last
            if last is not None and "log" in last:
                log_id = str(last["log"])
                key = self._key(log_id)
                if key is None:
                    raise OpsloopError(
                        f"audit log {self.path} is keyed (log {log_id}) but its key is not at "
                        f"{self.keys.where(log_id)}; run opsloop as the user that holds the "
                        f"key, or set ${KEY_ENV} / [audit] key_file"
                    )
                if not self._mac(key).ok(tail.last_line, str(last.get("prev")).encode()):
                    raise IntegrityError(
                        f"audit log {self.path}: the last entry (seq {last.get('seq')}) does "
                        "not match its key (edited, or written with another key); run "
                        "`opsloop audit verify`; nothing was written"
                    )
                seq, prev = int(last["seq"]), str(last["hash"])
                problem = self._head_problem(head, key, log_id, seq, prev)
                checkpoint = self._read_checkpoint()
                ahead = _seq_of(checkpoint) or 0
                if not problem and checkpoint and checkpoint.get("log") != log_id:
                    problem = (
                        f"the checkpoint outside the project was for log {checkpoint.get('log')}"
                        f" at entry {ahead}, not this log: the log was replaced"
                    )
                elif not problem and checkpoint and ahead > seq:
                    problem = (
                        f"the checkpoint outside the project recorded entry {ahead} but the "
                        f"log ended at entry {seq}: entries were removed from the end"
                    )
                if problem:
                    pending.insert(0, ("audit.recovered", "audit", {"head": problem}))
            else:
                log_id = new_id("log")
                key = self._key(log_id, create=True)
                assert key is not None
                seq = int(last["seq"]) if last is not None else 0
                prev = str(last["hash"]) if last is not None else GENESIS
                keyed = {"key_id": key_id(key), "unkeyed_entries": seq}
                if last is None and head is not None:
                    keyed["replaces"] = {"head": _jsonable(head)}
                checkpoint = self._read_checkpoint()
                if checkpoint is not None:
                    keyed["replaces_checkpoint"] = _jsonable(checkpoint)
                if self.on_keyed is not None:
                    keyed.update(self.on_keyed())
                if last is not None:  # a log written before keying: say where keying began
                    pending.insert(0, ("audit.keyed", "audit", keyed))
                    keyed = {}
            data = b""
            bodies = [
                self._body(0, log_id, "", who, item_action, item_target, item_detail)
                for item_action, item_target, item_detail in pending
            ]
            entry = self._body(0, log_id, "", who, action, target, detail)
            entry["before"] = redact(before)
            entry["after"] = redact(after)
            if record is not None:
                entry["record"] = dict(record)
            bodies.append(entry)
            if keyed:  # a new log: its first entry says how it is keyed
                bodies[0]["keyed"] = keyed
            for body in bodies:
                seq += 1
                body["seq"], body["prev"] = seq, prev
                line, prev = _seal(key, body)
                data += line
            entry["hash"] = prev
            os.write(fd, data)
            os.fsync(fd)
            self._write_head(key, log_id, seq, entry["hash"])
        return entry

    def _body(
        self,
        seq: int,
        log_id: str,
        prev: str,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "seq": seq,
            "id": new_id("aud"),
            "log": log_id,
            "time": utcnow(),
            "actor": actor,
            "action": action,
            "target": target,
            "before": None,
            "after": None,
            "detail": redact(detail or {}),
            "prev": prev,
        }

    def _read_tail(self, fd: int) -> _Tail:
        """The last complete line (parsed) and any torn bytes after it; O(line length)."""
        size = os.fstat(fd).st_size
        if size == 0:
            return _Tail(None, b"", 0, b"")
        block, pos, buf = 8192, size, b""
        newline = -1
        while True:
            start = max(0, pos - block)
            buf = os.pread(fd, pos - start, start) + buf
            pos = start
            newline = buf.rfind(b"\n")
            if newline != -1 or pos == 0:
                break
            block *= 2
        if newline == -1:
            return _Tail(None, b"", 0, buf)  # not one complete line: all of it is torn
        torn = buf[newline + 1 :]
        while True:
            before = buf.rfind(b"\n", 0, newline)
            if before != -1 or pos == 0:
                break
            start = max(0, pos - block)
            chunk = os.pread(fd, pos - start, start)
            buf, newline, pos, block = chunk + buf, newline + len(chunk), start, block * 2
        line = buf[before + 1 : newline + 1]
        end = pos + newline + 1
        try:
            last = json.loads(line)
        except ValueError:
            last = None
        if not isinstance(last, dict) or not isinstance(last.get("seq"), int):
            raise IntegrityError(
                f"audit log {self.path}: the last complete line is not an audit entry; run "
                "`opsloop audit verify` to see what happened to the log; nothing was written"
            )
        return _Tail(last, line, end, torn)

    def _quarantine(self, fd: int, tail: _Tail) -> dict[str, Any]:
        """Move the torn bytes of a crashed append to ``<log>.torn``; say what was moved."""
        note = {
            "offset": tail.end,
            "bytes": len(tail.torn),
            "sha256": hashlib.sha256(tail.torn).hexdigest(),
            "time": utcnow(),
            "data_b64": base64.b64encode(tail.torn).decode("ascii"),
        }
        qfd = os.open(self.quarantine_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, self.file_mode)
        try:
            os.write(qfd, (json.dumps(note, sort_keys=True) + "\n").encode("ascii"))
            os.fsync(qfd)
        finally:
            os.close(qfd)
        os.ftruncate(fd, tail.end)
        return {
            "torn_tail": {k: note[k] for k in ("offset", "bytes", "sha256")},
            "quarantined_to": self.quarantine_path.name,
            "why": "an append was cut short (a crash); its state change was never stored",
        }

    # ------------------------------------------------------------------ heads
    def _read_head(self) -> dict[str, Any] | None:
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            head = json.loads(raw)
        except ValueError:
            return {"malformed": True}
        return head if isinstance(head, dict) else {"malformed": True}

    def _read_checkpoint(self) -> dict[str, Any] | None:
        try:
            path = self.checkpoint_path
            head = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return head if isinstance(head, dict) else None

    @staticmethod
    def _head_mac(key: bytes, log_id: str, seq: int, digest: str) -> str:
        return _mac(key, _canonical({"head": True, "log": log_id, "seq": seq, "hash": digest}))

    def _head_ok(self, head: Mapping[str, Any], key: bytes) -> bool:
        try:
            expected = self._head_mac(key, str(head["log"]), int(head["seq"]), str(head["hash"]))
        except (KeyError, TypeError, ValueError):
            return False
        return hmac.compare_digest(expected, str(head.get("mac", "")))

    def _head_problem(
        self, head: dict[str, Any] | None, key: bytes, log_id: str, seq: int, digest: str
    ) -> str:
        """Why the head does not vouch for the tail an append found ("" when it does)."""
        if head is None:
            return f"the head file was missing; the log ended at entry {seq}"
        if head.get("malformed") or not self._head_ok(head, key) or head.get("log") != log_id:
            return f"the head file was malformed or not sealed with the key; log at entry {seq}"
        if int(head["seq"]) > seq:
            return (
                f"the head recorded entry {head['seq']} ({head['hash']}) but the log ended at "
                f"entry {seq}: entries were removed from the end"
            )
        if int(head["seq"]) == seq and head["hash"] != digest:
            return f"the head recorded another entry {seq} ({head['hash']})"
        return ""

    def _write_head(self, key: bytes, log_id: str, seq: int, digest: str) -> None:
        """Remember the newest seq and hash, sealed, in the folder and in the user's home."""
        head = {
            "log": log_id,
            "seq": seq,
            "hash": digest,
            "key_id": key_id(key),
            "mac": self._head_mac(key, log_id, seq, digest),
        }
        text = json.dumps(head, sort_keys=True)
        _replace(self.head_path, text, self.file_mode)
        text = json.dumps({**head, "path": str(self.path)}, sort_keys=True)
        with contextlib.suppress(OSError):  # best effort: the home may be read-only
            try:
                _replace(self.checkpoint_path, text)
            except FileNotFoundError:
                self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _replace(self.checkpoint_path, text)

    # ------------------------------------------------------------------ read
    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry in file order; a line that is not an entry raises IntegrityError.

        A torn last line (a crash mid-append, no newline) is skipped: the next append
        quarantines it.
        """
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                if not raw.endswith(b"\n"):
                    return
                entry, problem = _parse_line(raw)
                if entry is None:
                    raise IntegrityError(f"{self.path}:{lineno}: audit entry {problem}")
                yield entry

    # ------------------------------------------------------------------ verify
    def verify(self, *, collect_records: bool = False) -> VerifyResult:
        """Recheck every entry's seal and link, the head and the checkpoint outside the
        project; name the first entry (or line) that was edited, removed, moved or is not
        an entry. Never raises on a damaged file.

        Entries written before keying are parsed and rehashed (plain SHA-256); keyed lines
        are checked from their bytes alone, and parsed only when they commit to a record,
        record a recovery, or fail.
        """
        scan = _Scan(self._read_head(), self._read_checkpoint(), collect_records)
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            fh = None
        except OSError as exc:
            return scan.bad(f"the log cannot be read: {exc}", entry=False)
        if fh is not None:
            with fh:
                failed = self._scan(fh, scan)
            if failed is not None:
                return failed
        problem = self._verify_head(
            scan.head, scan.key, scan.log_id, scan.count, scan.seen.get("head"), scan.unkeyed
        )
        if not problem:
            problem = self._verify_checkpoint(
                scan.checkpoint, scan.key, scan.log_id, scan.count, scan.seen.get("checkpoint")
            )
        if problem:
            return scan.bad(problem, entry=False)
        return VerifyResult(
            True,
            scan.count,
            None,
            "",
            None,
            scan.unkeyed,
            scan.log_id,
            scan.warnings,
            scan.records,
            scan.records_before,
        )

    def _scan(self, fh: Any, scan: _Scan) -> VerifyResult | None:
        """Walk the lines; the failure, or None when every line is a good entry."""
        prev = GENESIS.encode("ascii")
        key = b""
        inner = outer = None  # the key's HMAC pads, once the keyed entries begin
        marks = {name: mark for name, mark in scan.marks.items() if mark is not None}
        marked = set(marks.values())
        collect = scan.collect_records
        count = 0
        sep, cut = b',"hash":"', -_HASH_SUFFIX - 1
        for lineno, raw in enumerate(fh, 1):
            if inner is not None and outer is not None and raw[cut : cut + 9] == sep:
                # the fast path, inlined (a million times): HMAC(prev + line up to "hash")
                mac = inner.copy()
                mac.update(prev)
                mac.update(raw[:cut])
                out = outer.copy()
                out.update(mac.digest())
                if out.hexdigest().encode("ascii") == raw[-67:-3]:
                    count += 1
                    prev = raw[-67:-3]
                    if collect or count in marked or b'"action":"audit.' in raw:
                        scan.count = count
                        if collect:
                            _collect_line(raw, scan)
                        if b'"action":"audit.' in raw:
                            self._note(json.loads(raw), scan)
                        if count in marked:
                            _mark(scan, marks, prev.decode("ascii"))
                    continue
            scan.count = count
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                scan.warnings.append(
                    f"line {lineno} is an incomplete last entry ({len(raw)} bytes: a crash "
                    "during an append); the next append quarantines it"
                )
                return None
            entry, problem = _parse_line(raw)
            scan.count += 1
            if entry is None:
                return scan.bad(f"line {lineno} {problem}", line=lineno)
            if entry.get("seq") != scan.count:
                return scan.bad(
                    f"expected entry {scan.count}, found entry {entry.get('seq')!r}"
                    " (an entry was removed, inserted or reordered)"
                )
            if entry.get("prev") != prev.decode("ascii"):
                return scan.bad("its link to the previous entry is broken")
            if key:
                if "log" not in entry:
                    return scan.bad(
                        "it is unkeyed but follows keyed entries (written without the key)"
                    )
                if entry["log"] != scan.log_id:
                    return scan.bad(f"it belongs to another log ({entry['log']})")
                return scan.bad(
                    f"its content was edited (its HMAC does not match the key {key_id(key)})"
                )
            if "log" in entry:  # the first keyed entry: find its key, then the fast path
                scan.log_id = str(entry["log"])
                try:
                    found = self._key(scan.log_id)
                except OpsloopError as exc:
                    return scan.bad(str(exc))
                if found is None:
                    return scan.bad(
                        f"the log is keyed (log {scan.log_id}) but no key is at "
                        f"{self.keys.where(scan.log_id)}, so it cannot be verified; verify "
                        f"as the user that holds the key, or set ${KEY_ENV}"
                    )
                key = scan.key = found
                pads = _LineMac(key)
                inner, outer = pads.inner, pads.outer
                if not pads.ok(raw, prev):
                    return scan.bad(
                        f"its content was edited (its HMAC does not match the key {key_id(key)})"
                    )
                self._note(entry, scan)
            elif _legacy_digest(entry) != entry.get("hash"):
                return scan.bad("its content was edited")
            else:
                scan.unkeyed = scan.count
            prev = str(entry.get("hash")).encode("ascii")
            if scan.count in marked:
                _mark(scan, marks, prev.decode("ascii"))
            count = scan.count
        scan.count = count
        return None

    @staticmethod
    def _note(entry: dict[str, Any], scan: _Scan) -> None:
        """What a keyed entry tells verify: keying, recoveries, record commitments."""
        detail = entry.get("detail") if entry.get("action") == "audit.keyed" else entry.get("keyed")
        if isinstance(detail, dict):
            scan.records_before = dict(detail.get("records") or {})
            if detail.get("replaces") or detail.get("replaces_checkpoint"):
                scan.warnings.append(
                    f"entry {scan.count} started a new log where one had been (its head or "
                    "checkpoint was left): an earlier log was deleted"
                )
        if entry.get("action") == "audit.recovered":
            scan.warnings.append(
                f"entry {scan.count} records a recovery: {_brief(entry.get('detail'))}"
            )
        if scan.collect_records:
            _collect_record(entry, scan.count, scan.records)

    def _verify_head(
        self,
        head: dict[str, Any] | None,
        key: bytes,
        log_id: str,
        count: int,
        hash_at_head: str | None,
        unkeyed: int,
    ) -> str:
        if head is None:
            if count == 0:
                return ""
            return (
                f"the head file {self.head_path.name} is missing but the log holds {count} "
                "entries (it was deleted, perhaps with entries cut from the end)"
            )
        if head.get("malformed") or not isinstance(head.get("seq"), int):
            return f"the head file {self.head_path.name} is malformed (not a JSON object with seq)"
        seq = int(head["seq"])
        if log_id:
            if not self._head_ok(head, key) or head.get("log") != log_id:
                return (
                    f"the head file {self.head_path.name} was rewritten (it is not sealed "
                    "with the log's key)"
                )
        elif "mac" in head or "log" in head:
            return (
                f"the head file {self.head_path.name} names a keyed log, but the log holds no "
                "keyed entry (the log was replaced or rewritten without the key)"
            )
        if seq > count:
            return (
                f"the log ends at entry {count} but entry {seq} was written"
                " (entries were removed from the end, or the head was altered)"
            )
        if hash_at_head is not None and hash_at_head != head.get("hash"):
            return f"the head records another entry {seq} (the log or the head was altered)"
        if seq < count - 1 and not log_id:
            # keyed entries after the head are each sealed, so they are genuine (a crash
            # between an entry and its head); unkeyed ones are not
            return f"the head records entry {seq} but the unkeyed log holds {count}"
        return ""

    def _verify_checkpoint(
        self,
        checkpoint: dict[str, Any] | None,
        key: bytes,
        log_id: str,
        count: int,
        hash_there: str | None,
    ) -> str:
        if checkpoint is None:
            return ""
        where = str(self.checkpoint_path)
        if not isinstance(checkpoint.get("seq"), int):
            return f"the checkpoint {where} is malformed"
        if checkpoint.get("log") != log_id:
            return (
                f"the checkpoint kept outside the project ({where}) is for log "
                f"{checkpoint.get('log')} at entry {checkpoint.get('seq')}, but this log is "
                f"{log_id or 'unkeyed'}: the log was deleted, replaced or rewritten"
            )
        if not self._head_ok(checkpoint, key):
            return f"the checkpoint {where} is not sealed with the log's key"
        if int(checkpoint["seq"]) > count:
            return (
                f"the log ends at entry {count} but the checkpoint kept outside the project "
                f"records entry {checkpoint['seq']}: entries were removed from the end"
            )
        if hash_there is not None and hash_there != checkpoint.get("hash"):
            return f"entry {checkpoint['seq']} differs from the checkpoint kept outside the project"
        return ""

    def require_valid(self) -> None:
        result = self.verify()
        if not result.ok:
            raise OpsloopError(f"audit log {self.path}: {result.describe()}", exit_code=1)


def _parse_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """(the entry, "") or (None, what is wrong with the line)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"is not valid UTF-8 (byte {exc.start})"
    try:
        entry = json.loads(text)
    except ValueError:
        return None, "is not valid JSON"
    if not isinstance(entry, dict):
        return None, f"is valid JSON but not an object (a {type(entry).__name__})"
    return entry, ""


def _collect_record(entry: dict[str, Any], seq: int, into: dict[str, tuple[str, int]]) -> None:
    """Note the record an entry commits to; a ``.failed`` entry withdraws its record (the
    change failed and the record was rolled back)."""
    record, detail = entry.get("record"), entry.get("detail")
    if isinstance(record, dict):
        into[str(record.get("id"))] = (str(record.get("sha256")), seq)
    elif str(entry.get("action", "")).endswith(".failed") and isinstance(detail, dict):
        into.pop(str(detail.get("record")), None)


def _seq_of(head: dict[str, Any] | None) -> int | None:
    if head is None or not isinstance(head.get("seq"), int):
        return None
    return int(head["seq"])


def _jsonable(value: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in value.items() if isinstance(v, str | int | bool)}


def _brief(detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail)
    if "torn_tail" in detail:
        torn = detail["torn_tail"]
        return f"a torn tail of {torn.get('bytes')} bytes was quarantined"
    if "head" in detail:
        return str(detail["head"])
    return json.dumps(detail, sort_keys=True)[:200]


def _replace(path: Path, text: str, mode: int = 0o600) -> None:
    """Overwrite a small file in place, padded to one 512-byte block (a rename over it
    would cost a flush of its data on ext4, per append)."""
    data = text.encode("utf-8")
    data += b" " * max(0, 512 - len(data))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)

"""Retrieved chunks and tool outputs, guarded before they reach the prompt.

A :class:`Chunk` carries its tenant and who may read it; a :class:`Caller` says who is
asking. :func:`guard_context` keeps only the chunks the caller may read — a chunk of
another tenant is dropped before anything looks at its text — scans the rest as
``retrieved`` (or ``tool_output``) text for indirect prompt injection, drops the ones that
block, and returns the others with PII and secrets redacted.

Access rule (:func:`may_read`): the chunk's tenant equals the caller's (``None`` only
matches ``None``: a single-tenant setup), or the chunk is ``public``; and when the chunk
names ``readers``, the caller's id or one of its groups is among them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    from opsloop.interfaces import Finding, ScanTarget
    from opsloop.project import Project


@dataclass(frozen=True)
class Caller:
    """Who a request is for: an id, a tenant, and the groups it belongs to."""

    id: str
    tenant: str | None = None
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Chunk:
    """A retrieved passage or a tool output, with where it came from and who may read it."""

    text: str
    id: str = ""
    tenant: str | None = None
    readers: frozenset[str] = frozenset()  # user ids or groups; empty: the whole tenant
    public: bool = False  # readable by every tenant
    source: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Chunk | Mapping[str, Any] | str) -> Chunk:
        """A Chunk from a Chunk, a mapping with the same keys, or bare text (no tenant)."""
        if isinstance(value, Chunk):
            return value
        if isinstance(value, str):
            return cls(value)
        if not isinstance(value, Mapping) or not isinstance(value.get("text"), str):
            raise OpsloopError("a context chunk needs a 'text' string (and may give tenant, …)")
        known = {"text", "id", "tenant", "readers", "public", "source", "metadata"}
        extra = {k: v for k, v in value.items() if k not in known}
        readers = value.get("readers") or ()
        if isinstance(readers, str):
            readers = (readers,)
        return cls(
            text=value["text"],
            id=str(value.get("id", "")),
            tenant=None if value.get("tenant") is None else str(value["tenant"]),
            readers=frozenset(str(r) for r in readers),
            public=bool(value.get("public", False)),
            source=str(value.get("source", "")),
            metadata={**dict(value.get("metadata") or {}), **extra},
        )


def may_read(caller: Caller, chunk: Chunk) -> bool:
    """Whether ``caller`` may read ``chunk`` (see the module's access rule)."""
    if not chunk.public and chunk.tenant != caller.tenant:
        return False
    if chunk.readers:
        return caller.id in chunk.readers or bool(caller.groups & chunk.readers)
    return True


@dataclass(frozen=True)
class Dropped:
    """A chunk left out, and why: ``access`` (the caller may not read it) or ``blocked``
    (a scanner blocked it; ``findings`` names the finding types, never the text)."""

    id: str
    reason: str
    findings: tuple[str, ...] = ()
    signal_id: str | None = None


@dataclass
class ContextResult:
    """The chunks that may go into the prompt (redacted), and what was left out."""

    chunks: list[Chunk]
    dropped: list[Dropped] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    signal_ids: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.chunks]


def guard_context(
    chunks: Iterable[Chunk | Mapping[str, Any] | str],
    *,
    caller: Caller,
    target: ScanTarget = "retrieved",
    project: Project | str | Path | None = None,
) -> ContextResult:
    """The chunks ``caller`` may read, scanned for indirect injection, PII and secrets.

    A chunk of another tenant (or not among its readers) is dropped unscanned; a chunk a
    scanner blocks is dropped and raises a ``guard_block`` signal; the rest come back with
    redactions applied, in their order. ``project`` as for :func:`opsloop.guard.scan`.
    """
    from opsloop.guard import resolve_project, scan_text

    if target not in ("retrieved", "tool_output"):
        raise OpsloopError(f"guard_context scans retrieved or tool_output text, not '{target}'")
    opened = resolve_project(project)
    result = ContextResult([])
    for raw in chunks:
        chunk = Chunk.of(raw)
        if not may_read(caller, chunk):
            result.dropped.append(Dropped(chunk.id, "access"))
            continue
        scanned = scan_text(opened, chunk.text, target)
        result.findings.extend(scanned.findings)
        if scanned.blocked:
            types = tuple(sorted({f.type for f in scanned.findings}))
            result.dropped.append(Dropped(chunk.id, "blocked", types, scanned.signal_id))
            if scanned.signal_id:
                result.signal_ids.append(scanned.signal_id)
            continue
        if scanned.text != chunk.text:
            chunk = Chunk(
                scanned.text,
                chunk.id,
                chunk.tenant,
                chunk.readers,
                chunk.public,
                chunk.source,
                chunk.metadata,
            )
        result.chunks.append(chunk)
    return result


def guard_tool_output(
    text: str, *, project: Project | str | Path | None = None
) -> Any:  # GuardResult
    """A tool's output scanned as ``tool_output`` before it goes back into the prompt."""
    from opsloop.guard import scan

    return scan(text, target="tool_output", project=project)

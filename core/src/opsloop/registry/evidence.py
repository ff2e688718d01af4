"""Recorded evidence for a version: evaluation, load-test and security-scan results."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.registry.access import get_store

if TYPE_CHECKING:
    from opsloop.project import Project
    from opsloop.records import Evidence


EVIDENCE_TYPES = ("evaluation", "load_test", "security_scan")
MAX_EVIDENCE_BYTES = 1_000_000


def record_evidence(
    project: Project,
    name: str,
    version: str,
    type: str,
    *,
    file: Path | None = None,
    data: Mapping[str, Any] | None = None,
    passed: bool | None = None,
    summary: str = "",
) -> Evidence:
    """Record a load-test, security-scan or evaluation result for a version; audited.

    ``file`` is a JSON object (kept, redacted, with its SHA-256); its ``passed`` (or ``ok``)
    key gives the verdict unless ``passed`` is given.
    """
    from opsloop.records import Evidence
    from opsloop.redact import redact

    if type not in EVIDENCE_TYPES:
        raise OpsloopError(
            f"unknown evidence kind '{type}'; use one of {', '.join(EVIDENCE_TYPES)}"
        )
    ref = get_store(project).resolve(name, version)
    body: dict[str, Any] = dict(data or {})
    source, digest = "", ""
    if file is not None:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise OpsloopError(f"cannot read evidence file {file}: {exc.strerror}") from None
        if len(raw) > MAX_EVIDENCE_BYTES:
            raise OpsloopError(
                f"evidence file {file} is {len(raw)} bytes; keep it under {MAX_EVIDENCE_BYTES} "
                "(record a summary and keep the full report elsewhere)"
            )
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise OpsloopError(f"evidence file {file} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise OpsloopError(f"evidence file {file} must hold a JSON object")
        body.update(loaded)
        source, digest = str(file), hashlib.sha256(raw).hexdigest()
    found = [body.pop(k) for k in ("passed", "ok") if isinstance(body.get(k), bool)]
    if passed is None and found:
        passed = found[0]
    evidence = Evidence(
        model=ref.name,
        version=ref.version,
        type=type,  # type: ignore[arg-type]
        passed=passed,
        summary=summary or str(body.get("summary", ""))[:500],
        data=redact(body),
        source=source,
        sha256=digest,
        actor=project.audit.actor,
    )
    project.emit(
        evidence,
        "model.evidence",
        f"{ref.name}/{ref.version}",
        after={
            "type": type,
            "verdict": {True: "passed", False: "failed", None: "none"}[passed],
            "id": evidence.id,
            "sha256": digest or None,
        },
    )
    return evidence


def latest_evidence(project: Project, name: str, version: str, type: str) -> Evidence | None:
    """The newest evidence of one kind for a version, or None."""
    from opsloop.records import Evidence

    found = [
        e
        for e in project.records.list(Evidence)
        if e.model == name and e.version == version and e.type == type
    ]
    return found[-1] if found else None

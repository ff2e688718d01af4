"""The guard stage, as the core runs it: every scanner in turn, redactions feeding forward.

The detectors themselves live beside it, SDK-free: :mod:`.normalize` (disguises undone),
:mod:`.decode` (encoded payloads), :mod:`.rules` (the rules tier), :mod:`.model` (the
learned tier), :mod:`.detect` (both tiers together), :mod:`.scanners` (the built-in
scanners) and :mod:`.evaluate` (``opsloop guard eval``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
from opsloop.records import Signal

if TYPE_CHECKING:
    from collections.abc import Collection

    from opsloop.interfaces import Finding, Scanner, ScanResult, ScanTarget
    from opsloop.project import Project

TARGETS = ("input", "retrieved", "tool_output", "output")


@dataclass
class GuardResult:
    """The combined verdict over all scanners; ``text`` has every redaction applied."""

    verdict: str  # "allow", "redact" or "block"
    text: str
    findings: list[Finding] = field(default_factory=list)
    results: list[ScanResult] = field(default_factory=list)
    signal_id: str | None = None

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"


def list_scanners(project: Project) -> list[Scanner]:
    """Every scanner, in the order they run: one per name, the plugin whose hooks run first
    keeping it (see opsloop.registrations), so a vendor plugin's ``prompt_injection``,
    ``secrets`` or ``pii`` replaces the built-in guard's."""
    return project.collect("register_scanners")


def run_scanners(scanners: list[Scanner], text: str, target: ScanTarget = "input") -> GuardResult:
    """Run ``scanners`` over ``text`` in turn (redactions feed forward); records nothing."""
    current = text
    verdict = "allow"
    results: list[ScanResult] = []
    for scanner in scanners:
        if target not in scanner.targets:
            continue
        result = scanner.scan(current, target=target)
        results.append(result)
        if result.verdict == "redact":
            current = result.text
            verdict = "block" if verdict == "block" else "redact"
        elif result.verdict == "block":
            verdict = "block"
    findings = [f for r in results for f in r.findings]
    return GuardResult(verdict, current, findings, results)


def scan_text(
    project: Project, text: str, target: ScanTarget = "input", *, skip: Collection[str] = ()
) -> GuardResult:
    """Run every scanner that covers ``target`` (but those named in ``skip``: a caller that
    already took PII and secrets out, like the gateway's vault, skips ``pii`` and
    ``secrets``); a block is emitted as a Signal."""
    if target not in TARGETS:
        raise OpsloopError(f"unknown scan target '{target}'; use one of: {', '.join(TARGETS)}")
    scanners = [s for s in list_scanners(project) if target in s.targets and s.name not in skip]
    if not scanners:
        raise OpsloopError(
            "no scanner is enabled; the built-in guard plugin registers prompt_injection, "
            "secrets and pii unless it is blocked or [plugin.guard] scanners is empty"
        )
    outcome = run_scanners(scanners, text, target)
    findings, results = outcome.findings, outcome.results
    if outcome.blocked:
        # Never the text itself: it may carry the very PII or secret that was found.
        signal = Signal(
            source="guard",
            type="guard_block",
            severity="warning",
            subject=target,
            summary=f"blocked {target}: " + ", ".join(sorted({f.type for f in findings})),
            data={
                "target": target,
                "scanners": [r.scanner for r in results if r.verdict == "block"],
                "findings": sorted({f.type for f in findings}),
            },
        )
        project.emit(signal)
        outcome.signal_id = signal.id
    project.hook.after_scan(project=project, target=target, results=results)
    return outcome


_opened: dict[str, Project] = {}
_opened_lock = threading.Lock()


def resolve_project(project: Project | str | Path | None = None) -> Project:
    """``project`` itself; or the project at that path; or, for None, the project of the
    current folder (``$OPSLOOP_PROJECT``, else the nearest opsloop.toml up from the cwd) —
    and where there is none, a detached one: default settings, nothing written anywhere.

    Projects opened here are kept for the life of the process, one per config file.
    """
    from opsloop.project import Project, locate

    if isinstance(project, Project):
        return project
    if project is None:
        config_path, _ = locate(None, os.environ)
        key = str(config_path) if config_path is not None else "<detached>"
    else:
        key = str(Path(project).resolve())
    with _opened_lock:
        if key not in _opened:
            if project is None:
                _opened[key] = Project.open(config_path, detached_ok=True)
            else:
                _opened[key] = Project.open(project)
        return _opened[key]


def scan(
    text: str, target: ScanTarget = "input", project: Project | str | Path | None = None
) -> GuardResult:
    """Scan ``text`` with every scanner of the project (see :func:`resolve_project`).

    Returns the :class:`GuardResult`: ``.verdict`` (allow, redact, block), ``.blocked``,
    ``.text`` (redacted) and ``.findings``. A block is a ``guard_block`` signal in the
    project's records (kept in memory when there is no project).
    """
    return scan_text(resolve_project(project), text, target)

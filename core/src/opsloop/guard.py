"""The guard stage, as the core runs it: every scanner in turn, redactions feeding forward."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
from opsloop.records import Signal

if TYPE_CHECKING:
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
    """Every scanner, in the order they run (one per name: see opsloop.registrations)."""
    return project.collect("register_scanners")


def scan_text(project: Project, text: str, target: ScanTarget = "input") -> GuardResult:
    """Run every scanner that covers ``target``; a block is emitted as a Signal."""
    if target not in TARGETS:
        raise OpsloopError(f"unknown scan target '{target}'; use one of: {', '.join(TARGETS)}")
    scanners = [s for s in list_scanners(project) if target in s.targets]
    if not scanners:
        raise OpsloopError(
            "no scanner is installed; install one, e.g. `pip install opsloop-guardrails`"
        )
    current = text
    verdict = "allow"
    results: list[ScanResult] = []
    for scanner in scanners:
        result = scanner.scan(current, target=target)
        results.append(result)
        if result.verdict == "redact":
            current = result.text
            verdict = "block" if verdict == "block" else "redact"
        elif result.verdict == "block":
            verdict = "block"
    findings = [f for r in results for f in r.findings]
    outcome = GuardResult(verdict, current, findings, results)
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

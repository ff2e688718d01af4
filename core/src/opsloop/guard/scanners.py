"""The guard's own scanners: no vendor SDK, no network, nothing downloaded.

``prompt_injection`` (rules + the shipped model, blocks), ``secrets`` and ``pii`` (rules,
redact). Built from ``[plugin.guard]`` by the built-in ``guard`` plugin; other plugins may
wrap them (opsloop-guardrails runs the same detectors as guardrails validators).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opsloop.errors import OpsloopError
from opsloop.guard import rules
from opsloop.guard.rules import Match
from opsloop.interfaces import Finding, ScanResult, ScanTarget

ALL_TARGETS: tuple[ScanTarget, ...] = ("input", "retrieved", "tool_output", "output")
INJECTION_TARGETS: tuple[ScanTarget, ...] = ("input", "retrieved", "tool_output")


def check_target(target: str) -> None:
    """Raise a one-line OpsloopError for an unknown scan target."""
    if target not in ALL_TARGETS:
        raise OpsloopError(f"unknown scan target '{target}'; use one of: {', '.join(ALL_TARGETS)}")


def to_finding(scanner: str, match: Match) -> Finding:
    """A detector's match as the core's Finding (``tier`` says rules or model)."""
    return Finding(scanner, match.type, match.start, match.end, match.score, match.rule, match.tier)


class InjectionScanner:
    """``prompt_injection``: blocks injection and jailbreak attempts (rules, then the model)."""

    name = "prompt_injection"

    def __init__(
        self,
        extra_patterns: Sequence[str] = (),
        *,
        use_model: bool = True,
        threshold: float | None = None,
        targets: Sequence[ScanTarget] = INJECTION_TARGETS,
    ) -> None:
        self.extra = rules.compile_patterns(extra_patterns)
        self.use_model = use_model
        self.threshold = threshold
        self.targets: tuple[ScanTarget, ...] = tuple(targets)

    def __repr__(self) -> str:
        return f"InjectionScanner(model={self.use_model}, threshold={self.threshold})"

    def detect(self, text: str, target: str = "input") -> list[Match]:
        """The raw matches, blocking or not (see :mod:`opsloop.guard.detect`)."""
        from opsloop.guard.detect import detect_injection

        return detect_injection(
            text, target, self.extra, use_model=self.use_model, threshold=self.threshold
        )

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult:
        check_target(target)
        if target not in self.targets or not text:
            return ScanResult(self.name, "allow", text)
        from opsloop.guard.detect import is_attack

        found = self.detect(text, target)
        findings = [to_finding(self.name, m) for m in found]
        return ScanResult(self.name, "block" if is_attack(found) else "allow", text, findings)


class SecretsScanner:
    """``secrets``: redacts API keys, tokens and private keys as ``<SECRET>``."""

    name = "secrets"
    targets: tuple[ScanTarget, ...] = ALL_TARGETS

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult:
        check_target(target)
        return _redacting(self.name, text, rules.find_secrets(text))


class PiiScanner:
    """``pii``: redacts e-mail, card (Luhn), phone and IBAN (mod-97) as ``<EMAIL>``..."""

    name = "pii"
    targets: tuple[ScanTarget, ...] = ALL_TARGETS

    def __init__(self, entities: Sequence[str] = rules.PII_ENTITIES) -> None:
        unknown = sorted(set(entities) - set(rules.PII_ENTITIES))
        if unknown:
            raise ValueError(f"unknown PII entities {unknown}; use {list(rules.PII_ENTITIES)}")
        self.entities = tuple(entities)

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult:
        check_target(target)
        return _redacting(self.name, text, rules.find_pii(text, self.entities))


def _redacting(name: str, text: str, found: list[Match]) -> ScanResult:
    if not found:
        return ScanResult(name, "allow", text)
    findings = [to_finding(name, m) for m in found]
    return ScanResult(name, "redact", rules.redact(text, found), findings)


def build_scanners(settings: Any) -> list[Any]:
    """The scanners ``[plugin.guard]`` asks for, in its order."""
    makers: dict[str, Callable[[], Any]] = {
        "prompt_injection": lambda: InjectionScanner(
            settings.injection_patterns, use_model=settings.model, threshold=settings.threshold
        ),
        "secrets": SecretsScanner,
        "pii": lambda: PiiScanner(settings.pii_entities),
    }
    return [makers[name]() for name in settings.scanners]

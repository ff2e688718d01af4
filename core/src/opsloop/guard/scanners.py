"""The guard's own scanners: no vendor SDK, no network, nothing downloaded.

``prompt_injection`` (rules + the shipped model, blocks), ``secrets`` and ``pii`` (rules,
redact), ``markup`` (exfiltrating markup in model output: strip or block). Built from
``[plugin.guard]`` by the built-in ``guard`` plugin; other plugins may
wrap them (opsloop-guardrails runs the same detectors as guardrails validators).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opsloop.errors import OpsloopError
from opsloop.guard import pii, rules
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
    """``pii``: redacts e-mail, card (Luhn), phone, IBAN (mod-97), US SSN, UK NINO and IP
    addresses as ``<EMAIL>``, ``<CARD>``... (see :mod:`opsloop.guard.pii`)."""

    name = "pii"
    targets: tuple[ScanTarget, ...] = ALL_TARGETS

    def __init__(self, entities: Sequence[str] = pii.PII_ENTITIES) -> None:
        pii.check_entities(entities)
        self.entities = tuple(entities)

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult:
        check_target(target)
        return _redacting(self.name, text, pii.find_pii(text, self.entities))


class MarkupScanner:
    """``markup``: strips (or blocks) model output that would exfiltrate data when rendered:
    image links with query payloads, script tags, iframes, data URIs (see
    :mod:`opsloop.guard.output`)."""

    name = "markup"
    targets: tuple[ScanTarget, ...] = ("output",)

    def __init__(self, action: str = "strip", allow_hosts: Sequence[str] = ()) -> None:
        if action not in ("strip", "block"):
            raise ValueError(f"unknown markup action '{action}'; use strip or block")
        self.action = action
        self.allow_hosts = tuple(allow_hosts)

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult:
        check_target(target)
        from opsloop.guard.output import find_markup, strip_markup

        if target not in self.targets:
            return ScanResult(self.name, "allow", text)
        found = find_markup(text, self.allow_hosts)
        if not found:
            return ScanResult(self.name, "allow", text)
        findings = [to_finding(self.name, m) for m in found]
        if self.action == "block":
            return ScanResult(self.name, "block", text, findings)
        return ScanResult(self.name, "redact", strip_markup(text, found), findings)


def _redacting(name: str, text: str, found: list[Match]) -> ScanResult:
    if not found:
        return ScanResult(name, "allow", text)
    findings = [to_finding(name, m) for m in found]
    return ScanResult(name, "redact", pii.redact(text, found), findings)


def build_scanners(settings: Any) -> list[Any]:
    """The scanners ``[plugin.guard]`` asks for, in its order."""
    makers: dict[str, Callable[[], Any]] = {
        "prompt_injection": lambda: InjectionScanner(
            settings.injection_patterns, use_model=settings.model, threshold=settings.threshold
        ),
        "secrets": SecretsScanner,
        "pii": lambda: PiiScanner(settings.pii_entities),
        "markup": lambda: MarkupScanner(settings.markup, settings.markup_allow_hosts),
    }
    return [makers[name]() for name in settings.scanners]

"""opsloop Scanners that run guardrails-ai Guards, and guardrails validators as scanners.

A :class:`GuardrailsScanner` builds its ``Guard`` on the first scan (so registering scanners
stays cheap and guardrails is imported only when text is scanned) and calls
``Guard.validate`` — guardrails' own LLM-free path — for every text. Spans in findings index
the text the scanner was given.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opsloop.errors import first_line
from opsloop.guard import pii
from opsloop.guard.scanners import ALL_TARGETS, INJECTION_TARGETS, check_target
from opsloop.interfaces import Finding, ScanResult, ScanTarget
from opsloop_guardrails import rules

__all__ = ["ALL_TARGETS", "INJECTION_TARGETS", "GuardrailsScanner", "check_target"]

_TYPED_REASON = re.compile(r"^(?P<type>[a-z0-9_]+(?:\.[a-z0-9_]+)*)(?:: (?P<detail>.*))?$", re.S)


def _snake(name: str) -> str:
    """``DetectPII`` -> ``detect_pii``; ``hub/no-pineapple`` -> ``no_pineapple``."""
    last = name.rsplit("/", 1)[-1]
    return re.sub(r"\W+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", last)).strip("_").lower()


def to_scan_result(scanner: str, text: str, outcome: Any) -> ScanResult:
    """Turn a guardrails ``ValidationOutcome`` into an opsloop ScanResult.

    Failed validation -> block; a fixed value that differs from the text -> redact; else allow.
    Each error span becomes a finding; a reason ``"<type>: <detail>"`` names the type.
    """
    findings: list[Finding] = []
    for summary in outcome.validation_summaries or []:
        if summary.validator_status != "fail":
            continue
        fallback = f"guardrails.{_snake(summary.validator_name or 'validator')}"
        for span in summary.error_spans or []:
            m = _TYPED_REASON.match(span.reason or "")
            kind, detail = (m["type"], m["detail"] or "") if m else (fallback, span.reason or "")
            findings.append(Finding(scanner, kind, span.start, span.end, detail=detail))
        if not summary.error_spans:
            findings.append(Finding(scanner, fallback, detail=summary.failure_reason or ""))
    output = outcome.validated_output
    if not outcome.validation_passed:
        return ScanResult(scanner, "block", text, findings)
    if isinstance(output, str) and output != text:
        return ScanResult(scanner, "redact", output, findings)
    return ScanResult(scanner, "allow", text, findings)


class GuardrailsScanner:
    """An opsloop Scanner backed by a guardrails-ai ``Guard``; the Guard is built lazily."""

    def __init__(
        self,
        name: str,
        targets: Sequence[ScanTarget],
        validators: Callable[[], Sequence[Any]],
    ) -> None:
        for target in targets:
            check_target(target)
        self.name = name
        self.targets: tuple[ScanTarget, ...] = tuple(targets)
        self._validators = validators
        self._guard: Any = None
        self._lock = threading.Lock()  # a Guard keeps per-call history: one call at a time

    def __repr__(self) -> str:
        return f"GuardrailsScanner(name={self.name!r}, targets={self.targets!r})"

    @property
    def guard(self) -> Any:
        """The guardrails ``Guard`` (guardrails is imported offline on first use)."""
        if self._guard is None:
            from opsloop_guardrails.offline import load_guardrails

            guardrails = load_guardrails()
            guard = guardrails.Guard(name=f"opsloop-{self.name}", history_max_length=1)
            guard.use(*self._validators())
            guard.configure(allow_metrics_collection=False)
            self._guard = guard
        return self._guard

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult:
        """Validate ``text`` with the Guard and return allow, redact or block."""
        check_target(target)
        if target not in self.targets or not text:
            return ScanResult(self.name, "allow", text)
        with self._lock:
            guard = self.guard  # imports guardrails offline: before any other guardrails import
            from guardrails.errors import ValidationError

            try:
                outcome = guard.validate(text, metadata={"target": target})
            except ValidationError as exc:  # a validator with on_fail="exception"
                detail = first_line(exc)
                finding = Finding(self.name, "guardrails.validation_error", detail=detail)
                return ScanResult(self.name, "block", text, [finding])
            finally:
                guard.history.clear()  # never keep scanned text (PII, secrets) around
        return to_scan_result(self.name, text, outcome)


# ---------------------------------------------------------------------------- factories
def pii_scanner(entities: Sequence[str] = pii.PII_ENTITIES) -> GuardrailsScanner:
    """``pii``: redacts e-mail, card, phone, IBAN, SSN, NINO and IP addresses as
    ``<EMAIL>``, ``<CARD>``... (:mod:`opsloop.guard.pii`)."""
    chosen = tuple(entities)

    def validators() -> list[Any]:
        from opsloop_guardrails.validators import DetectPII

        return [DetectPII(entities=chosen, on_fail="fix")]

    return GuardrailsScanner("pii", ALL_TARGETS, validators)


def secrets_scanner() -> GuardrailsScanner:
    """``secrets``: redacts API keys, tokens and private keys as ``<SECRET>``."""

    def validators() -> list[Any]:
        from opsloop_guardrails.validators import DetectSecrets

        return [DetectSecrets(on_fail="fix")]

    return GuardrailsScanner("secrets", ALL_TARGETS, validators)


def injection_scanner(extra_patterns: Sequence[str] = ()) -> GuardrailsScanner:
    """``prompt_injection``: blocks injection and jailbreak attempts (rules and model)."""
    patterns = tuple(extra_patterns)
    rules.compile_patterns(patterns)  # fail at registration, not at the first scan

    def validators() -> list[Any]:
        from opsloop_guardrails.validators import DetectPromptInjection

        return [DetectPromptInjection(extra_patterns=patterns, on_fail="noop")]

    return GuardrailsScanner("prompt_injection", INJECTION_TARGETS, validators)


def validators_as_scanner(
    name: str,
    validators: Sequence[Any] | Callable[[], Sequence[Any]],
    targets: Sequence[ScanTarget] = ALL_TARGETS,
) -> GuardrailsScanner:
    """Any guardrails-ai validators (pure-Python ones work offline) as one opsloop Scanner.

    on_fail="fix" validators redact, "noop" and "exception" ones block.
    """
    factory = validators if callable(validators) else (lambda: list(validators))
    return GuardrailsScanner(name, targets, factory)


def scanner_as_validator(scanner: Any, target: str = "input", on_fail: Any = "fix") -> Any:
    """Any opsloop Scanner as a guardrails-ai Validator (``opsloop/scanner``)."""
    from opsloop_guardrails.validators import ScannerValidator

    return ScannerValidator(scanner, target=target, on_fail=on_fail)


def build_scanners(settings: Any) -> list[GuardrailsScanner]:
    """The scanners ``[plugin.guardrails]`` asks for, in its order."""
    makers: dict[str, Callable[[], GuardrailsScanner]] = {
        "secrets": secrets_scanner,
        "pii": lambda: pii_scanner(settings.pii_entities),
        "prompt_injection": lambda: injection_scanner(settings.injection_patterns),
    }
    return [makers[name]() for name in settings.scanners]

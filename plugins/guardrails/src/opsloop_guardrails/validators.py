"""guardrails-ai validators (registered with ``register_validator``) built on the pure rules.

* ``opsloop/pii``: e-mail, payment card (Luhn), phone, IBAN (mod-97), US SSN, UK NINO, IPv4
  and IPv6 addresses (:mod:`opsloop.guard.pii`); fix value is redacted.
* ``opsloop/secrets``: API keys, tokens, private key blocks; fix value is redacted.
* ``opsloop/prompt_injection``: injection and jailbreak detection, rules and the core's
  shipped model (:func:`opsloop.guard.detect.detect_injection`); no fix value.
* ``opsloop/scanner``: any opsloop Scanner as a guardrails validator (the way back).

Each failure carries one ``ErrorSpan`` per finding; its ``reason`` is ``"<type>: <rule>"``
(e.g. ``"pii.card: luhn"``), which :mod:`opsloop_guardrails.scanners` turns into findings.
Importing this module imports guardrails, offline (see :mod:`opsloop_guardrails.offline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opsloop.guard import pii
from opsloop_guardrails import rules
from opsloop_guardrails.offline import load_guardrails

load_guardrails()

from guardrails.validators import (  # noqa: E402 - only after the offline import above
    ErrorSpan,
    FailResult,
    PassResult,
    ValidationResult,
    Validator,
    register_validator,
)

if TYPE_CHECKING:
    from opsloop.interfaces import Scanner

REASON_SEPARATOR = ": "


def reason(finding_type: str, detail: str) -> str:
    """The ErrorSpan reason for a finding: ``"<type>: <detail>"`` (or just the type)."""
    return f"{finding_type}{REASON_SEPARATOR}{detail}" if detail else finding_type


def _result(value: str, matches: Sequence[rules.Match], what: str, fix: bool) -> ValidationResult:
    if not matches:
        return PassResult()
    kinds = sorted({m.type for m in matches})
    return FailResult(
        error_message=f"{what}: {', '.join(kinds)}",
        fix_value=pii.redact(value, matches) if fix else None,
        error_spans=[
            ErrorSpan(start=m.start, end=m.end, reason=reason(m.type, m.rule)) for m in matches
        ],
    )


@register_validator(name="opsloop/pii", data_type="string")
class DetectPII(Validator):
    """Finds e-mail addresses, payment cards, phone numbers, IBANs, national ids and IP
    addresses; fix redacts them."""

    def __init__(
        self, entities: Sequence[str] = pii.PII_ENTITIES, on_fail: Any = None, **kwargs: Any
    ) -> None:
        pii.check_entities(entities)
        super().__init__(on_fail=on_fail, entities=list(entities), **kwargs)
        self.entities = tuple(entities)

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        return _result(text, pii.find_pii(text, self.entities), "PII found", fix=True)


@register_validator(name="opsloop/secrets", data_type="string")
class DetectSecrets(Validator):
    """Finds API keys, tokens and private key blocks; fix redacts them as ``<SECRET>``."""

    def __init__(self, on_fail: Any = None, **kwargs: Any) -> None:
        super().__init__(on_fail=on_fail, **kwargs)

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        text = str(value)
        return _result(text, rules.find_secrets(text), "secret found", fix=True)


@register_validator(name="opsloop/prompt_injection", data_type="string")
class DetectPromptInjection(Validator):
    """Prompt-injection and jailbreak detector (rules, then the shipped model unless
    ``use_model=False``); ``metadata["target"]`` picks rules. Quoted mentions pass."""

    def __init__(
        self,
        extra_patterns: Sequence[str] = (),
        on_fail: Any = None,
        use_model: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            on_fail=on_fail, extra_patterns=list(extra_patterns), use_model=use_model, **kwargs
        )
        self.extra = rules.compile_patterns(extra_patterns)
        self.use_model = use_model

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        from opsloop.guard.detect import detect_injection, is_attack

        text = str(value)
        target = str(metadata.get("target", "input"))
        found = detect_injection(text, target, self.extra, use_model=self.use_model)
        blocking = [m for m in found if is_attack([m])]
        return _result(text, blocking, "prompt injection", fix=False)


@register_validator(name="opsloop/scanner", data_type="string")
class ScannerValidator(Validator):
    """Any opsloop Scanner as a guardrails validator: a redact verdict is the fix value."""

    def __init__(
        self, scanner: Scanner, target: str = "input", on_fail: Any = None, **kwargs: Any
    ) -> None:
        if target not in rules.TARGETS:
            raise ValueError(f"unknown scan target {target!r}; use one of {list(rules.TARGETS)}")
        super().__init__(on_fail=on_fail, scanner=scanner.name, target=target, **kwargs)
        self.scanner = scanner
        self.target = target

    def _validate(self, value: Any, metadata: dict[str, Any]) -> ValidationResult:
        target = str(metadata.get("target", self.target))
        result = self.scanner.scan(str(value), target=target)
        if result.verdict == "allow":
            return PassResult()
        kinds = sorted({f.type for f in result.findings}) or [self.scanner.name]
        return FailResult(
            error_message=f"{self.scanner.name} {result.verdict}: {', '.join(kinds)}",
            fix_value=result.text if result.verdict == "redact" else None,
            error_spans=[
                ErrorSpan(start=f.start, end=f.end, reason=reason(f.type, f.detail))
                for f in result.findings
                if 0 <= f.start <= f.end
            ],
        )

"""The detectors behind the guardrails validators, which live in the core's guard.

Kept as a module of this plugin for code that imported ``opsloop_guardrails.rules``; the
detectors themselves are :mod:`opsloop.guard.rules` (rules tier), :mod:`opsloop.guard.detect`
(rules + model) and :mod:`opsloop.guard.normalize`, so they work without guardrails-ai.
"""

from __future__ import annotations

from opsloop.guard.normalize import Normalized, canonical, normalize
from opsloop.guard.rules import (
    IBAN_LENGTHS,
    INJECTION_RULES,
    PII_ENTITIES,
    PLACEHOLDERS,
    SECRET_PLACEHOLDER,
    SECRET_RULES,
    TARGETS,
    Match,
    compile_patterns,
    find_injection,
    find_pii,
    find_secrets,
    iban_ok,
    luhn_ok,
    placeholder,
    redact,
)

__all__ = [
    "IBAN_LENGTHS",
    "INJECTION_RULES",
    "PII_ENTITIES",
    "PLACEHOLDERS",
    "SECRET_PLACEHOLDER",
    "SECRET_RULES",
    "TARGETS",
    "Match",
    "Normalized",
    "canonical",
    "compile_patterns",
    "find_injection",
    "find_pii",
    "find_secrets",
    "iban_ok",
    "luhn_ok",
    "normalize",
    "placeholder",
    "redact",
]

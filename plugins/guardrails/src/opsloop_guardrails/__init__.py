"""opsloop-guardrails: guard scanners (prompt injection, PII, secrets) run by guardrails-ai.

The entry module is :mod:`opsloop_guardrails.plugin`; it imports no vendor SDK. guardrails-ai
is imported on the first scan, through :func:`opsloop_guardrails.offline.load_guardrails`,
with its nltk download and hub telemetry switched off.
"""

from __future__ import annotations

__version__ = "0.1.0"

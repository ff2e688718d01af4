"""Keep secrets out of logs, notebooks and the audit log."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|authorization"
    r"|(^|[_-])auth($|[_-])|bearer|(^|[_-])dsn$)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|xox[abpr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style keys
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?=@)", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True when a setting or parameter name says it holds a secret."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """Mask known token shapes and passwords inside URLs."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any, secret_keys: frozenset[str] = frozenset()) -> Any:
    """A copy of ``value`` with secret-named keys masked and token-shaped strings masked."""
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if (str(k) in secret_keys or is_secret_key(str(k))) and v not in (None, "")
                else redact(v, secret_keys)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secret_keys) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value

"""HMAC-SHA256 signatures of the generic webhook's body, and their check for a receiver.

The sender signs ``f"{timestamp}.{body}"`` (timestamp: Unix seconds, as sent in
``X-Opsloop-Timestamp``) with the shared secret and sends ``X-Opsloop-Signature:
sha256=<hex>``. A receiver recomputes it over the raw body bytes, compares in constant
time, and refuses a timestamp older (or newer) than its replay window. This module needs
only the standard library, so a receiver can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Opsloop-Signature"
TIMESTAMP_HEADER = "X-Opsloop-Timestamp"
DELIVERY_HEADER = "X-Opsloop-Delivery"
EVENT_HEADER = "X-Opsloop-Event"
#: Seconds a receiver accepts between the signed timestamp and its own clock.
REPLAY_WINDOW = 300


class SignatureError(ValueError):
    """A webhook request whose signature or timestamp does not check out."""


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Opsloop-Signature`` value for ``body`` sent at ``timestamp``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    window: float = REPLAY_WINDOW,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless ``signature`` signs ``body`` at ``timestamp``
    and ``timestamp`` is within ``window`` seconds of ``now``."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        raise SignatureError(f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - sent) > window:
        raise SignatureError(
            f"{TIMESTAMP_HEADER} is {abs(current - sent):.0f} s away from now "
            f"(window {window:.0f} s): a replayed or delayed request"
        )
    if not hmac.compare_digest(sign(secret, sent, body), signature or ""):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body")

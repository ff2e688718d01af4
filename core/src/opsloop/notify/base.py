"""What every notifier shares: the delivery error, secrets read at send time, JSON POSTs.

Standard library only (urllib, smtplib): the core imports no HTTP or vendor SDK.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from opsloop import __version__
from opsloop.redact import REDACTED, redact_text

USER_AGENT = f"opsloop/{__version__}"


class DeliveryError(Exception):
    """A notification was not delivered. ``retry``: whether trying later can help (a
    timeout, HTTP 5xx or 429) or not (HTTP 400, a refused recipient); ``retry_after``:
    seconds the receiver asked to wait. The message never holds a secret or a full URL."""

    def __init__(self, message: str, *, retry: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class ChannelSettings(BaseModel):
    """Base of a notifier type's settings: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    timeout: float = 10.0  # seconds per attempt


def read_secret(
    notifier: str, what: str, value: SecretStr | None, env: str | None, environ: Mapping[str, str]
) -> str:
    """The secret from the variable ``env`` names (preferred), else from the settings.

    Read at send time, so a key rotated in the environment is used by the next retry, and
    an unset variable keeps the notification in the outbox instead of losing it.
    """
    if env:
        found = environ.get(env, "")
        if not found:
            raise DeliveryError(
                f"notifier '{notifier}': the variable {env} ({what}) is not set; export it and "
                "run `opsloop notify flush`"
            )
        return found
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    raise DeliveryError(f"notifier '{notifier}': no {what} configured", retry=False)


def where(url: str) -> str:
    """``host:port`` of a URL: what an error may name (a webhook's path can hold its token)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def shown_url(url: str) -> str:
    """A URL as ``opsloop notify list`` shows it: scheme, host and port only (a webhook's
    path or query, like a Slack or Discord URL's, can hold its token; userinfo a password)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{where(url)}" + ("/…" if parts.path.strip("/") or parts.query else "")


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value (and token shapes, URL passwords) masked."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return redact_text(text)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def post_json(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, bytes]:
    """POST ``body`` and return (status, response body) for a 2xx answer; otherwise raise
    :class:`DeliveryError`: retryable for 408, 425, 429, 5xx and network errors."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        snippet = redact_text(exc.read()[:120].decode("utf-8", "replace").strip())
        status = exc.code
        raise DeliveryError(
            f"HTTP {status} from {where(url)}" + (f": {snippet}" if snippet else ""),
            retry=status in (408, 425, 429) or status >= 500,
            retry_after=_retry_after(exc.headers.get("Retry-After")),
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason: Any = getattr(exc, "reason", None) or exc
        raise DeliveryError(f"cannot reach {where(url)}: {reason}") from None

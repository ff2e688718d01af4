"""The built-in notifier types: a signed generic webhook, Slack, PagerDuty, e-mail (SMTP).

Each is configured by a ``[respond.notify.<name>]`` table (see docs/notifiers.md) and sends
one :class:`~opsloop.interfaces.Notification` per call of ``deliver``; the outbox
(:mod:`opsloop.notify`) decides when, retries, and keeps what could not be sent.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from opsloop.interfaces import Notification, NotifierType
from opsloop.notify import signing
from opsloop.notify.base import (
    ChannelSettings,
    DeliveryError,
    post_json,
    read_secret,
    shown_url,
)

PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
_DONE = {"resolve": ":white_check_mark:", "acknowledge": ":eyes:"}


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _one_of(value: Any, env: str | None, what: str) -> None:
    if value is None and not env:
        raise ValueError(f"set {what}_env (the variable that holds it) or {what}")


def headline(n: Notification) -> str:
    """One line for a person: ``[CRITICAL] open: title`` / ``[RESOLVED] title``."""
    if n.action == "resolve":
        return f"[RESOLVED] {n.title}"
    if n.action == "acknowledge":
        return f"[ACKNOWLEDGED] {n.title}"
    what = n.event.removeprefix("incident.").replace("open", "opened")
    return f"[{n.severity.upper()}] {what}: {n.title}"


def _details(n: Notification) -> dict[str, str]:
    """The fields worth a line each, in display order; empty ones left out."""
    fields = {
        "severity": n.severity,
        "status": n.status,
        "subject": n.subject,
        "incident": n.incident_id or "",
        "alert": n.alert_id or "",
        "rule": n.rule,
        "runbook": n.runbook or "",
        "project": n.project,
    }
    return {k: v for k, v in fields.items() if v}


# ---------------------------------------------------------------------------- webhook
class WebhookSettings(ChannelSettings):
    """``type = "webhook"``: POST the notification as JSON, signed with HMAC-SHA256."""

    url: str
    secret: SecretStr | None = None
    secret_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)  # extra headers, not secret

    _url = field_validator("url")(_http_url)

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookSettings:
        _one_of(self.secret, self.secret_env, "secret")
        return self


def webhook_body(n: Notification, key: str) -> bytes:
    """The exact bytes the webhook signs and sends."""
    doc = {"delivery": key, "event": n.event, "action": n.action, "notification": n.to_dict()}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


class WebhookNotifier:
    def __init__(self, name: str, settings: WebhookSettings, environ: Mapping[str, str]) -> None:
        self.name, self.settings, self.environ = name, settings, environ

    def secret_values(self) -> list[str]:
        s = self.settings
        return [
            self.environ.get(s.secret_env or "", ""),
            s.secret.get_secret_value() if s.secret else "",
        ]

    def target(self) -> str:
        return shown_url(self.settings.url)

    def deliver(self, notification: Notification, key: str) -> None:
        s = self.settings
        secret = read_secret(self.name, "webhook secret", s.secret, s.secret_env, self.environ)
        body = webhook_body(notification, key)
        stamp = int(time.time())  # per attempt: a retry after an outage is still fresh
        headers = {
            **s.headers,
            signing.EVENT_HEADER: notification.event,
            signing.DELIVERY_HEADER: key,
            signing.TIMESTAMP_HEADER: str(stamp),
            signing.SIGNATURE_HEADER: signing.sign(secret, stamp, body),
        }
        post_json(s.url, body, headers, s.timeout)


# ---------------------------------------------------------------------------- slack
class SlackSettings(ChannelSettings):
    """``type = "slack"``: an incoming webhook; its URL is the secret (``url_env``)."""

    url: SecretStr | None = None
    url_env: str | None = None

    @model_validator(mode="after")
    def _has_url(self) -> SlackSettings:
        _one_of(self.url, self.url_env, "url")
        if self.url is not None:
            _http_url(self.url.get_secret_value())
        return self


def slack_payload(n: Notification) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (the notification fallback) and ``blocks``."""
    icon = _DONE.get(n.action, _ICONS.get(n.severity, ""))
    text = f"{icon} {headline(n)}".strip()
    details = _details(n)
    fields = [{"type": "mrkdwn", "text": f"*{k.capitalize()}*\n{v}"} for k, v in details.items()]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(n)[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": (n.note or n.title)[:3000]},
            "fields": fields[:10],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"opsloop · {n.event} · {n.created_at}"}],
        },
    ]
    return {"text": text, "blocks": blocks}


class SlackNotifier:
    def __init__(self, name: str, settings: SlackSettings, environ: Mapping[str, str]) -> None:
        self.name, self.settings, self.environ = name, settings, environ

    def secret_values(self) -> list[str]:
        s = self.settings
        return [self.environ.get(s.url_env or "", ""), s.url.get_secret_value() if s.url else ""]

    def target(self) -> str:
        return "Slack incoming webhook (URL is secret)"

    def deliver(self, notification: Notification, key: str) -> None:
        s = self.settings
        url = read_secret(self.name, "Slack webhook URL", s.url, s.url_env, self.environ)
        body = json.dumps(slack_payload(notification)).encode("utf-8")
        post_json(_http_url_or_error(self.name, url), body, {}, s.timeout)


def _http_url_or_error(name: str, url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise DeliveryError(f"notifier '{name}': the Slack webhook URL is not http(s)", retry=False)
    return url


# ---------------------------------------------------------------------------- pagerduty
class PagerDutySettings(ChannelSettings):
    """``type = "pagerduty"``: Events API v2 (trigger, acknowledge, resolve)."""

    routing_key: SecretStr | None = None
    routing_key_env: str | None = None
    url: str = PAGERDUTY_URL
    source: str = ""  # payload.source; default: the project's name
    component: str = ""  # default: the incident's subject
    group: str = ""
    client: str = "opsloop"

    _url = field_validator("url")(_http_url)

    @model_validator(mode="after")
    def _has_key(self) -> PagerDutySettings:
        _one_of(self.routing_key, self.routing_key_env, "routing_key")
        return self


def pagerduty_event(
    n: Notification, routing_key: str, settings: PagerDutySettings
) -> dict[str, Any]:
    """One Events API v2 event. ``dedup_key`` is the incident's, so an acknowledge or resolve
    reaches the alert its trigger opened; follow-ups carry only the three keys PD reads."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": n.action,
        "dedup_key": n.dedup_key[:255],
    }
    if n.action != "trigger":
        return event
    event["payload"] = {
        "summary": n.title[:1024] or n.event,
        "source": settings.source or n.project or "opsloop",
        "severity": n.severity,  # info, warning, critical: all three are PD severities
        "timestamp": n.created_at,
        "component": settings.component or n.subject,
        "group": settings.group or n.project,
        "class": n.rule or n.event,
        "custom_details": _details(n) | ({"note": n.note} if n.note else {}),
    }
    event["payload"] = {k: v for k, v in event["payload"].items() if v not in ("", None, {})}
    event["client"] = settings.client
    return event


class PagerDutyNotifier:
    def __init__(self, name: str, settings: PagerDutySettings, environ: Mapping[str, str]) -> None:
        self.name, self.settings, self.environ = name, settings, environ

    def secret_values(self) -> list[str]:
        s = self.settings
        return [
            self.environ.get(s.routing_key_env or "", ""),
            s.routing_key.get_secret_value() if s.routing_key else "",
        ]

    def target(self) -> str:
        return shown_url(self.settings.url)

    def accepts(self, notification: Notification) -> bool:
        """PagerDuty has no action for a note (an incident marked mitigated)."""
        return notification.action in ("trigger", "acknowledge", "resolve")

    def deliver(self, notification: Notification, key: str) -> None:
        s = self.settings
        routing_key = read_secret(
            self.name, "PagerDuty routing key", s.routing_key, s.routing_key_env, self.environ
        )
        body = json.dumps(pagerduty_event(notification, routing_key, s)).encode("utf-8")
        post_json(s.url, body, {}, s.timeout)


# ---------------------------------------------------------------------------- e-mail
class EmailSettings(ChannelSettings):
    """``type = "email"``: SMTP, optionally STARTTLS (or TLS from the start), with login."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, gt=0, lt=65536)
    sender: str  # From:
    to: list[str] = Field(min_length=1)
    username: str = ""
    password: SecretStr | None = None
    password_env: str | None = None
    starttls: bool = False
    ssl: bool = False  # TLS from the first byte (port 465)
    cafile: str = ""  # a CA bundle for a private SMTP server's certificate

    @model_validator(mode="after")
    def _consistent(self) -> EmailSettings:
        if self.starttls and self.ssl:
            raise ValueError("set starttls or ssl, not both")
        if self.username:
            _one_of(self.password, self.password_env, "password")
        return self


def email_message(n: Notification, key: str, settings: EmailSettings) -> EmailMessage:
    """The e-mail of one notification. ``Message-ID`` comes from the idempotency key, so a
    repeated send after a crash is the same message to a mail system that de-duplicates."""
    msg = EmailMessage()
    msg["Subject"] = f"[opsloop] {headline(n)}"
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@opsloop>"
    msg["X-Opsloop-Event"] = n.event
    msg["X-Opsloop-Delivery"] = key
    lines = [headline(n), "", n.note or n.title, ""]
    lines += [f"{k:<9} {v}" for k, v in _details(n).items()]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class EmailNotifier:
    def __init__(self, name: str, settings: EmailSettings, environ: Mapping[str, str]) -> None:
        self.name, self.settings, self.environ = name, settings, environ

    def secret_values(self) -> list[str]:
        s = self.settings
        return [
            self.environ.get(s.password_env or "", ""),
            s.password.get_secret_value() if s.password else "",
        ]

    def target(self) -> str:
        return f"smtp://{self.settings.host}:{self.settings.port} to {', '.join(self.settings.to)}"

    def deliver(self, notification: Notification, key: str) -> None:
        s = self.settings
        message = email_message(notification, key, s)
        context = ssl.create_default_context(cafile=s.cafile or None)
        try:
            smtp: smtplib.SMTP
            if s.ssl:
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                if s.starttls:
                    smtp.starttls(context=context)
                if s.username:
                    password = read_secret(
                        self.name, "SMTP password", s.password, s.password_env, self.environ
                    )
                    smtp.login(s.username, password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"SMTP {s.host}:{s.port} refused the login of '{s.username}' ({exc.smtp_code})",
                retry=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"SMTP {s.host}:{s.port} refused the recipients {sorted(exc.recipients)}",
                retry=False,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP {s.host}:{s.port}: {exc}", retry=False) from None
        except smtplib.SMTPResponseException as exc:
            # 4xx: try again later; 5xx: the server will not take it as it is
            raise DeliveryError(
                f"SMTP {s.host}:{s.port} answered {exc.smtp_code}", retry=exc.smtp_code < 500
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"SMTP {s.host}:{s.port}: certificate not trusted ({exc.verify_message});"
                " set cafile",
                retry=False,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"cannot reach SMTP {s.host}:{s.port}: {exc}") from None


def _builder(cls: type[Any]) -> Any:
    def build(name: str, settings: Any, project: Any) -> Any:
        return cls(name, settings, project.environ)

    return build


BUILTIN_TYPES: list[NotifierType] = [
    NotifierType(
        "webhook", WebhookSettings, _builder(WebhookNotifier), "JSON POST signed with HMAC-SHA256"
    ),
    NotifierType("slack", SlackSettings, _builder(SlackNotifier), "Slack incoming webhook"),
    NotifierType(
        "pagerduty", PagerDutySettings, _builder(PagerDutyNotifier), "PagerDuty Events API v2"
    ),
    NotifierType("email", EmailSettings, _builder(EmailNotifier), "e-mail over SMTP"),
]

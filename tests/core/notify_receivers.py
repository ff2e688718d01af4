"""Local receivers that speak the notifiers' documented wire formats, for the tests.

Each HTTP receiver checks what the real service documents (headers, JSON shape, the
webhook's HMAC signature, PagerDuty's required fields, Slack's block limits), answers as the
service does, and notes every deviation in ``problems`` for the test to assert empty.
``down()`` makes it answer 503; ``stop()`` closes the port, as a service that is gone.
The SMTP receiver is a real SMTP server (aiosmtpd) with login and optional STARTTLS.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opsloop.notify import signing

PD_SEVERITIES = {"critical", "error", "warning", "info"}
SLACK_BLOCKS = {"header", "section", "context", "divider", "actions", "image", "rich_text"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """``kind``: webhook, slack or pagerduty; ``secret``: the webhook secret, the Slack URL
    path or the PagerDuty routing key it expects."""

    kind: str
    secret: str
    port: int = field(default_factory=free_port)
    delay: float = 0.0  # seconds per request, to widen races
    received: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    status: int = 0  # 0: answer as the service does; else this status (503: down)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        path = {"webhook": "/hooks/opsloop", "slack": self.secret, "pagerduty": "/v2/enqueue"}
        return f"http://127.0.0.1:{self.port}{path[self.kind]}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.status:
                    self._answer(receiver.status, b"unavailable", "text/plain")
                    return
                got = Received(self.path, dict(self.headers.items()), body)
                status, answer, ctype = getattr(receiver, f"_{receiver.kind}")(got)
                if status < 300:
                    receiver.received.append(got)
                self._answer(status, answer, ctype)

            def _answer(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _problem(self, what: str) -> None:
        self.problems.append(what)

    def _common(self, got: Received) -> Any:
        if got.headers.get("Content-Type") != "application/json":
            self._problem(f"Content-Type is {got.headers.get('Content-Type')!r}")
        if not got.headers.get("User-Agent", "").startswith("opsloop/"):
            self._problem("no opsloop User-Agent")
        try:
            return got.json
        except ValueError:
            self._problem("body is not JSON")
            return None

    # ------------------------------------------------------------------ webhook
    def _webhook(self, got: Received) -> tuple[int, bytes, str]:
        doc = self._common(got)
        h = got.headers
        try:
            signing.verify(
                self.secret,
                got.body,
                h.get(signing.TIMESTAMP_HEADER, ""),
                h.get(signing.SIGNATURE_HEADER, ""),
            )
        except signing.SignatureError as exc:
            self._problem(f"signature: {exc}")
            return 401, b"bad signature", "text/plain"
        if not isinstance(doc, dict) or set(doc) != {"delivery", "event", "action", "notification"}:
            self._problem(f"webhook body keys: {sorted(doc or {})}")
        elif doc["delivery"] != h.get(signing.DELIVERY_HEADER) or doc["event"] != h.get(
            signing.EVENT_HEADER
        ):
            self._problem("delivery/event headers differ from the body")
        return 200, b"{}", "application/json"

    # ------------------------------------------------------------------ slack
    def _slack(self, got: Received) -> tuple[int, bytes, str]:
        if got.path != self.secret:
            return 404, b"no_service", "text/plain"
        doc = self._common(got)
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or not doc["text"]:
            self._problem("slack: no text")
            return 400, b"invalid_payload", "text/plain"
        for block in doc.get("blocks", []):
            if block.get("type") not in SLACK_BLOCKS:
                self._problem(f"slack: block type {block.get('type')!r}")
            if block["type"] == "header" and (
                block["text"]["type"] != "plain_text" or len(block["text"]["text"]) > 150
            ):
                self._problem("slack: header must be plain_text of at most 150 characters")
            if block["type"] == "section" and len(block.get("fields", [])) > 10:
                self._problem("slack: more than 10 fields in a section")
        return 200, b"ok", "text/plain"

    # ------------------------------------------------------------------ pagerduty
    def _pagerduty(self, got: Received) -> tuple[int, bytes, str]:
        doc = self._common(got)
        errors = []
        if got.path != "/v2/enqueue":
            return 404, b"not found", "text/plain"
        if not isinstance(doc, dict):
            errors.append("not an object")
            doc = {}
        if doc.get("routing_key") != self.secret:
            errors.append("Invalid routing key")
        action = doc.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append(f"event_action {action!r}")
        dedup = doc.get("dedup_key")
        if not isinstance(dedup, str) or not 0 < len(dedup) <= 255:
            errors.append("dedup_key missing or longer than 255")
        if action == "trigger":
            payload = doc.get("payload") or {}
            for key in ("summary", "source", "severity"):
                if not payload.get(key):
                    errors.append(f"payload.{key} is required")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append(f"payload.severity {payload.get('severity')!r}")
            if len(payload.get("summary", "")) > 1024:
                errors.append("payload.summary longer than 1024")
        elif set(doc) - {"routing_key", "event_action", "dedup_key"}:
            errors.append(f"{action} carries extra keys {sorted(set(doc))}")
        if errors:
            self._problem("pagerduty: " + "; ".join(errors))
            body = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": errors,
            }
            return 400, json.dumps(body).encode(), "application/json"
        body = {"status": "success", "message": "Event processed", "dedup_key": dedup}
        return 202, json.dumps(body).encode(), "application/json"


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on loopback that takes a login and keeps every message."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        port: int | None = None,
        tls: Any = None,
        smtps: bool = False,
    ) -> None:
        self.username, self.password = username, password
        self.port = port or free_port()
        self.tls = tls  # an ssl.SSLContext: STARTTLS offered and required ...
        self.smtps = smtps  # ... or TLS from the first byte (SMTPS)
        self.messages: list[Any] = []  # aiosmtpd Envelopes
        self.logins: list[str] = []
        self._controller: Any = None

    def start(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                receiver.messages.append(envelope)
                return "250 Message accepted for delivery"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):  # type: ignore[no-untyped-def]
            login = auth.login.decode() if isinstance(auth.login, bytes) else auth.login
            password = auth.password.decode() if isinstance(auth.password, bytes) else auth.password
            ok = (login, password) == (receiver.username, receiver.password)
            if ok:
                receiver.logins.append(login)
            return AuthResult(success=ok)

        kwargs: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": self.port,
            "authenticator": authenticator,
            "auth_require_tls": self.tls is not None,
            "auth_required": True,
        }
        if self.tls is not None and self.smtps:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; here the socket is TLS already
            kwargs.update(ssl_context=self.tls, auth_require_tls=False)
        elif self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        self._controller = Controller(Handler(), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

"""Alerts from Prometheus: an Alertmanager webhook receiver (``opsloop respond serve``).

Alertmanager posts its webhook JSON (version 4: ``status``, ``groupKey``, ``alerts[]`` with
``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``). A firing
alert becomes a Signal, so the alert rules open (or update) an incident and run the rule's
runbook exactly as for a signal raised inside opsloop; a resolved alert resolves the
incident its firing opened. Standard library only (``http.server``): core stays light.

The signal type is the alert's ``signal`` label when it has one (opsloop-prometheus sets
it), ``slo_burn`` for opsloop's burn-rate alerts, else ``prometheus``. Severity
``page``/``critical`` -> critical, ``ticket``/``warning`` -> warning, anything else ->
warning. The subject is the ``model`` label, else ``job``, else the alert name.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, ParameterError
from opsloop.records import Signal

if TYPE_CHECKING:
    from opsloop.project import Project

SLO_ALERTS = {"OpsloopAvailabilityBurnRate": "slo_burn", "OpsloopLatencyBurnRate": "slo_burn"}
_SEVERITY = {"page": "critical", "critical": "critical", "ticket": "warning", "warning": "warning"}
MAX_BODY = 4 * 1024 * 1024  # Alertmanager caps a group at max_alerts; a bound for the rest


@dataclass(frozen=True)
class ReceivedAlert:
    """One alert of a webhook, as opsloop reads it."""

    status: str  # firing | resolved
    fingerprint: str
    signal: Signal


@dataclass
class Outcome:
    """What one webhook did: signals emitted, incidents opened or updated, resolved."""

    firing: int = 0
    resolved: int = 0
    incidents: list[str] = field(default_factory=list)
    resolved_incidents: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "firing": self.firing,
            "resolved": self.resolved,
            "incidents": self.incidents,
            "resolved_incidents": self.resolved_incidents,
        }


def _strings(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ParameterError(f"webhook: {what} is not an object")
    return {str(k): str(v) for k, v in value.items()}


def parse_webhook(payload: Any) -> list[ReceivedAlert]:
    """The alerts of an Alertmanager webhook body (version 4); ParameterError if malformed."""
    if not isinstance(payload, dict):
        raise ParameterError("webhook: the body is not a JSON object (Alertmanager sends one)")
    version = str(payload.get("version", "4"))
    if version != "4":
        raise ParameterError(f"webhook: version {version!r} is not supported; opsloop reads 4")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise ParameterError("webhook: 'alerts' is missing or not a list")
    out = []
    for number, item in enumerate(alerts, 1):
        if not isinstance(item, dict):
            raise ParameterError(f"webhook: alert number {number} is not an object")
        labels = _strings(item.get("labels"), f"alert {number}'s labels")
        notes = _strings(item.get("annotations"), f"alert {number}'s annotations")
        status = str(item.get("status") or payload.get("status") or "")
        if status not in ("firing", "resolved"):
            raise ParameterError(
                f"webhook: alert number {number} has status {status!r}; use 'firing' or 'resolved'"
            )
        name = labels.get("alertname", "")
        kind = labels.get("signal") or SLO_ALERTS.get(name) or "prometheus"
        subject = labels.get("model") or labels.get("job") or name
        fingerprint = str(item.get("fingerprint", ""))
        signal = Signal(
            source="alertmanager",
            type=kind,
            severity=_SEVERITY.get(labels.get("severity", ""), "warning"),  # type: ignore[arg-type]
            subject=subject,
            summary=notes.get("summary") or notes.get("description") or name,
            data={
                "labels": labels,
                "annotations": notes,
                "startsAt": item.get("startsAt"),
                "endsAt": item.get("endsAt"),
                "fingerprint": fingerprint,
                "groupKey": payload.get("groupKey"),
                "generatorURL": item.get("generatorURL"),
            },
        )
        out.append(ReceivedAlert(status, fingerprint, signal))
    return out


def receive(project: Project, payload: Any) -> Outcome:
    """Apply one webhook: a firing alert is emitted as a Signal (the rules open or update its
    incident and run the runbook); a resolved one resolves its open incidents."""
    from opsloop.respond import _matches, list_rules, resolve_key, rule_key

    outcome = Outcome()
    for received in parse_webhook(payload):
        signal = received.signal
        if received.status == "firing":
            outcome.firing += 1
            project.emit(
                signal,
                "alertmanager.firing",
                signal.subject,
                after={"fingerprint": received.fingerprint},
                actor="alertmanager",
            )
            for rule in list_rules(project):
                if rule.open_incident and _matches(rule, signal):
                    row = project.records._db.execute(
                        "SELECT incident_id FROM open_incidents WHERE dedup_key = ?",
                        (rule_key(rule, signal),),
                    ).fetchone()
                    if row is not None and row[0] not in outcome.incidents:
                        outcome.incidents.append(row[0])
            continue
        outcome.resolved += 1
        for rule in list_rules(project):
            if not rule.open_incident or rule.signal_type != signal.type:
                continue
            note = f"resolved by Alertmanager (alert {received.fingerprint or '?'} ended)"
            update = resolve_key(project, rule_key(rule, signal), note)
            if update is not None:
                outcome.resolved_incidents.append(update.incident_id)
    return outcome


@dataclass(frozen=True)
class Auth:
    """What a request must carry: a bearer token, or basic-auth user and password."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def allows(self, header: str | None) -> bool:
        if self.token is None and self.user is None:
            return True
        header = header or ""
        scheme, _, value = header.partition(" ")
        if self.token is not None and scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if self.user is not None and scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
                password.encode(), (self.password or "").encode()
            )
        return False


def auth_from_env(token_env: str | None, user: str | None, password_env: str | None) -> Auth:
    """The receiver's credentials, read from the environment (never from the command line,
    where other users could see them); a named variable that is unset is an error."""

    def read(name: str) -> str:
        value = os.environ.get(name)
        if not value:
            raise ParameterError(f"environment variable '{name}' is not set or empty")
        return value

    token = read(token_env) if token_env else None
    if user and not password_env:
        raise ParameterError("--basic-user needs --basic-password-env NAME (the password)")
    password = read(password_env) if password_env else None
    return Auth(token=token, user=user, password=password)


def make_server(
    project: Project, host: str = "127.0.0.1", port: int = 9095, auth: Auth | None = None
) -> ThreadingHTTPServer:
    """The receiver bound to ``host:port`` (``port`` 0: a free one); ``serve_forever()`` it.

    ``POST /`` or ``/alertmanager`` takes a webhook; ``GET /healthz`` answers ok. Requests
    are applied one at a time (one record-store connection)."""
    checker = auth or Auth()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "opsloop-receiver"

        def log_message(self, format: str, *args: Any) -> None:
            return  # no request log: Authorization headers never reach one

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/healthz", ""):
                self._reply(200, {"ok": True})
            else:
                self._reply(404, {"error": f"no route {self.path}; POST / or /alertmanager"})

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("", "/alertmanager"):
                self._reply(404, {"error": f"no route {self.path}; POST / or /alertmanager"})
                return
            if not checker.allows(self.headers.get("Authorization")):
                self._reply(401, {"error": "missing or wrong credentials"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._reply(413, {"error": f"body must be 0 to {MAX_BODY} bytes"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
            except (ValueError, UnicodeDecodeError):
                self._reply(400, {"error": "webhook: the body is not JSON"})
                return
            try:
                with lock:
                    outcome = receive(project, payload)
            except OpsloopError as exc:
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, {"ok": True, **outcome.to_dict()})

    return ThreadingHTTPServer((host, port), Handler)

"""Notifiers against local receivers of their documented wire formats, and the outbox."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from notify_receivers import HttpReceiver, SmtpReceiver

from opsloop import notify, respond
from opsloop.errors import ConfigError, OpsloopError
from opsloop.notify import signing
from opsloop.project import Project
from opsloop.records import Incident, Signal
from opsloop.testing import make_project

# aiosmtpd warns that the plain-text test server takes a login; that is the point here
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

HOOK_SECRET = "whsec-3b1f6c0d9e8a7b6c5d4e3f2a1b0c9d8e"
SLACK_PATH = "/services/T0OPS/B0LOOP/s3cr3tSlackT0ken0123456"
PD_KEY = "R0UTINGKEY0123456789abcdef012345"  # 32 characters, like a real one
SMTP_PASSWORD = "smtp-pa55word-9f8e7d"
ENV = {"HOOK_SECRET": HOOK_SECRET, "PD_KEY": PD_KEY, "SMTP_PASSWORD": SMTP_PASSWORD}


def opsloop_cli(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``opsloop --project root ARGS`` in a new process (only the built-in plugins)."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from opsloop.cli import main; main()",
            "--project",
            str(root),
            *args,
        ],
        env={**os.environ, **env, "OPSLOOP_PLUGINS__ENABLED": '["core"]'},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def config_for(**tables: str) -> str:
    head = '[project]\nname = "fraud-scoring"\n'
    return head + "".join(
        f"\n[respond.notify.{name}]\n{textwrap.dedent(body)}" for name, body in tables.items()
    )


def drift(project: Project, subject: str = "fraud", severity: str = "critical") -> Incident:
    project.emit(
        Signal(
            source="test",
            type="drift",
            severity=severity,
            subject=subject,  # type: ignore[arg-type]
            summary=f"drift on {subject}",
        )
    )
    return [i for i in project.records.list(Incident) if i.subject == subject][-1]


@pytest.fixture
def webhook() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver("webhook", HOOK_SECRET).start()
    yield receiver
    receiver.stop()


def webhook_project(tmp_path: Path, receiver: HttpReceiver, extra: str = "") -> Project:
    body = f'type = "webhook"\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\n'
    return make_project(tmp_path, config=config_for(hooks=body + extra), environ=ENV)


# ---------------------------------------------------------------------------- webhook
def test_webhook_posts_signed_json_a_receiver_can_verify(
    tmp_path: Path, webhook: HttpReceiver
) -> None:
    project = webhook_project(tmp_path, webhook)
    incident = drift(project)
    assert webhook.problems == []
    (got,) = webhook.received
    doc = got.json
    assert doc["event"] == "incident.open" and doc["action"] == "trigger"
    assert doc["delivery"] == f"hooks:{incident.id}" == got.headers["X-Opsloop-Delivery"]
    n = doc["notification"]
    assert (n["incident_id"], n["severity"], n["subject"]) == (incident.id, "critical", "fraud")
    assert n["dedup_key"] == f"opsloop/fraud-scoring/{incident.id}"
    assert n["rule"] == "model-drift" and n["runbook"] == "drift-triage"
    # The documented check: HMAC-SHA256 over "<timestamp>.<raw body>" ...
    stamp, signature = got.headers["X-Opsloop-Timestamp"], got.headers["X-Opsloop-Signature"]
    signing.verify(HOOK_SECRET, got.body, stamp, signature)
    # ... fails for another body, another key, or outside the replay window.
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(HOOK_SECRET, got.body.replace(b"fraud", b"frauD"), stamp, signature)
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify("another-secret", got.body, stamp, signature)
    with pytest.raises(signing.SignatureError, match="replayed or delayed"):
        signing.verify(HOOK_SECRET, got.body, stamp, signature, now=int(stamp) + 301)
    # An acknowledge and a resolve follow, same dedup key, in order.
    respond.update_incident(project, incident.id, "acknowledged")
    respond.update_incident(project, incident.id, "resolved", note="rolled back")
    events = [r.json["event"] for r in webhook.received]
    assert events == ["incident.open", "incident.acknowledged", "incident.resolved"]
    assert {r.json["notification"]["dedup_key"] for r in webhook.received} == {n["dedup_key"]}
    assert webhook.received[-1].json["notification"]["note"] == "rolled back"


def test_a_signature_from_the_wrong_secret_is_refused_and_set_aside(
    tmp_path: Path, webhook: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(
        tmp_path,
        config=config_for(hooks=f'type = "webhook"\nurl = "{webhook.url}"\nsecret = "wrong"\n'),
    )
    drift(project)
    assert webhook.received == []
    # 401 is not retried: trying again with the same key cannot help
    (row,) = notify.outbox(project).rows()
    error = f"HTTP 401 from 127.0.0.1:{webhook.port}: bad signature"
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, error)
    assert "set aside as failed" in capsys.readouterr().err
    (entry,) = [e for e in project.audit.entries() if e["action"] == "notify.failed"]
    assert entry["target"] == row.key and "401" in entry["after"]["error"]


# ---------------------------------------------------------------------------- slack
def test_slack_incoming_webhook_text_and_blocks(tmp_path: Path) -> None:
    slack = HttpReceiver("slack", SLACK_PATH).start()
    try:
        env = {"SLACK_URL": slack.url}
        project = make_project(
            tmp_path,
            config=config_for(chat='type = "slack"\nurl_env = "SLACK_URL"\n'),
            environ=env,
        )
        incident = drift(project)
        drift(project)  # a second alert joins the open incident: an update
        respond.update_incident(project, incident.id, "resolved")
    finally:
        slack.stop()
    assert slack.problems == []
    texts = [r.json["text"] for r in slack.received]
    assert texts == [
        ":rotating_light: [CRITICAL] opened: drift on fraud",
        ":rotating_light: [CRITICAL] update: drift on fraud",
        ":white_check_mark: [RESOLVED] drift on fraud",
    ]
    header, section, context = slack.received[0].json["blocks"]
    title = {"type": "plain_text", "text": "[CRITICAL] opened: drift on fraud"}
    assert header == {"type": "header", "text": title}
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in section["fields"]}
    assert fields["*Incident*"] == incident.id and fields["*Runbook*"] == "drift-triage"
    assert context["elements"][0]["text"].startswith("opsloop · incident.open · ")
    assert "attached" in slack.received[1].json["blocks"][1]["text"]["text"]


# ---------------------------------------------------------------------------- pagerduty
def test_pagerduty_trigger_acknowledge_resolve_share_the_incident_dedup_key(
    tmp_path: Path,
) -> None:
    pd = HttpReceiver("pagerduty", PD_KEY).start()
    try:
        body = f'type = "pagerduty"\nurl = "{pd.url}"\nrouting_key_env = "PD_KEY"\n'
        project = make_project(tmp_path, config=config_for(pager=body), environ=ENV)
        incident = drift(project)
        respond.update_incident(project, incident.id, "acknowledged")
        respond.update_incident(project, incident.id, "mitigated")  # PagerDuty has no such action
        respond.update_incident(project, incident.id, "resolved")
    finally:
        pd.stop()
    assert pd.problems == []
    trigger, ack, resolve = (r.json for r in pd.received)
    dedup = f"opsloop/fraud-scoring/{incident.id}"
    assert [e["event_action"] for e in (trigger, ack, resolve)] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert {e["dedup_key"] for e in (trigger, ack, resolve)} == {dedup}
    assert ack == {"routing_key": PD_KEY, "event_action": "acknowledge", "dedup_key": dedup}
    payload = trigger["payload"]
    assert (payload["summary"], payload["source"], payload["severity"]) == (
        "drift on fraud",
        "fraud-scoring",
        "critical",
    )
    assert (payload["component"], payload["class"]) == ("fraud", "model-drift")
    assert payload["custom_details"]["incident"] == incident.id
    assert trigger["client"] == "opsloop"


def test_pagerduty_refuses_a_bad_routing_key_permanently(tmp_path: Path) -> None:
    pd = HttpReceiver("pagerduty", PD_KEY).start()
    try:
        body = f'type = "pagerduty"\nurl = "{pd.url}"\nrouting_key_env = "PD_KEY"\n'
        project = make_project(tmp_path, config=config_for(pager=body), environ={"PD_KEY": "x"})
        drift(project, "a")
        drift(project, "b")  # not stuck behind the first: a 400 does not block the line
    finally:
        pd.stop()
    rows = notify.outbox(project).rows()
    assert [r.status for r in rows] == ["failed", "failed"]
    assert "HTTP 400" in rows[0].last_error and "Invalid routing key" in rows[0].last_error
    assert len(pd.problems) == 2


# ---------------------------------------------------------------------------- e-mail
def email_table(smtp: SmtpReceiver, extra: str = "") -> str:
    return (
        textwrap.dedent(f"""\
        type = "email"
        host = "127.0.0.1"
        port = {smtp.port}
        sender = "opsloop@example.org"
        to = ["oncall@example.org", "ml@example.org"]
        username = "opsloop"
        password_env = "SMTP_PASSWORD"
        """)
        + extra
    )


def test_email_is_sent_to_a_real_smtp_server_with_login(tmp_path: Path) -> None:
    smtp = SmtpReceiver("opsloop", SMTP_PASSWORD).start()
    try:
        project = make_project(tmp_path, config=config_for(mail=email_table(smtp)), environ=ENV)
        incident = drift(project)
        respond.update_incident(project, incident.id, "resolved")
    finally:
        smtp.stop()
    assert smtp.logins == ["opsloop", "opsloop"]
    opened, resolved = smtp.messages
    assert opened.mail_from == "opsloop@example.org"
    assert opened.rcpt_tos == ["oncall@example.org", "ml@example.org"]
    msg = message_from_bytes(opened.original_content)
    assert msg["Subject"] == "[opsloop] [CRITICAL] opened: drift on fraud"
    assert msg["X-Opsloop-Delivery"] == f"mail:{incident.id}"
    assert msg["Message-ID"].endswith("@opsloop>")
    assert incident.id in msg.get_payload()
    assert message_from_bytes(resolved.original_content)["Subject"] == (
        "[opsloop] [RESOLVED] drift on fraud"
    )


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_email_with_starttls_and_the_servers_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    smtp = SmtpReceiver("opsloop", SMTP_PASSWORD, tls=context).start()
    try:
        table = email_table(smtp, "starttls = true\n")
        # without the CA the certificate is not trusted: a clear, permanent failure
        project = make_project(tmp_path / "a", config=config_for(mail=table), environ=ENV)
        drift(project)
        (row,) = notify.outbox(project).rows()
        assert row.status == "failed" and "certificate not trusted" in row.last_error
        project = make_project(
            tmp_path / "b", config=config_for(mail=table + f'cafile = "{cert}"\n'), environ=ENV
        )
        drift(project)
    finally:
        smtp.stop()
    assert smtp.logins == ["opsloop"] and len(smtp.messages) == 1
    assert notify.outbox(project).rows() == []


def test_email_over_smtps(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    smtp = SmtpReceiver("opsloop", SMTP_PASSWORD, tls=context, smtps=True).start()
    try:
        table = email_table(smtp, f'ssl = true\ncafile = "{cert}"\n')
        project = make_project(tmp_path, config=config_for(mail=table), environ=ENV)
        drift(project)
    finally:
        smtp.stop()
    assert smtp.logins == ["opsloop"] and len(smtp.messages) == 1
    assert notify.outbox(project).rows() == []


# ---------------------------------------------------------------------------- outbox
def test_a_down_notifier_keeps_order_backs_off_and_delivers_each_event_once(
    tmp_path: Path, webhook: HttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    project = webhook_project(tmp_path, webhook, "backoff = 2\nmax_backoff = 5\n")
    webhook.status = 503
    before = time.time()
    incident = drift(project)
    after = time.time()
    respond.update_incident(project, incident.id, "acknowledged")
    respond.update_incident(project, incident.id, "resolved")
    box = notify.outbox(project)
    rows = box.rows()
    # the first failed once and was given a backoff; the two behind it were not tried
    assert [(r.event, r.attempts) for r in rows] == [
        ("incident.open", 1),
        ("incident.acknowledged", 0),
        ("incident.resolved", 0),
    ]
    # the first wait is `backoff` (plus up to 10 % jitter) from the failed attempt
    assert before + 2 <= rows[0].next_at <= after + 2.2
    assert "HTTP 503" in rows[0].last_error
    assert capsys.readouterr().err.count("kept in the outbox") == 1
    # not yet due: a drain does nothing; forced, it tries again and doubles the wait
    assert notify.drain(project).retrying == []
    before = time.time()
    notify.drain(project, force=True, quiet=True)
    after = time.time()
    first = box.rows()[0]
    assert first.attempts == 2 and before + 4 <= first.next_at <= after + 4.4  # doubled
    before = time.time()
    notify.drain(project, force=True, quiet=True)
    after = time.time()
    assert before + 5 <= box.rows()[0].next_at <= after + 5.5  # capped at max_backoff
    # back up: everything goes out, in order, once
    webhook.status = 0
    result = notify.drain(project, force=True)
    assert [r.json["event"] for r in webhook.received] == [
        "incident.open",
        "incident.acknowledged",
        "incident.resolved",
    ]
    assert result.delivered == [r.key for r in rows]
    assert notify.drain(project, force=True).delivered == []  # nothing twice
    assert box.rows() == []
    delivered = [e for e in project.audit.entries() if e["action"] == "notify.deliver"]
    assert [e["after"]["event"] for e in delivered] == [r.event for r in rows]
    assert delivered[0]["after"]["attempts"] == 4
    assert project.audit.verify().ok


def test_an_event_is_queued_once_per_notifier(tmp_path: Path, webhook: HttpReceiver) -> None:
    project = webhook_project(tmp_path, webhook)
    incident = drift(project)
    n = notify.notification_for(project, incident)
    assert n is not None
    assert notify.enqueue(project, n) == []  # already queued (and delivered)
    assert len(webhook.received) == 1


def test_a_held_lease_keeps_a_second_drain_off_the_notifier(
    tmp_path: Path, webhook: HttpReceiver
) -> None:
    project = webhook_project(tmp_path, webhook)
    webhook.status = 503
    drift(project)
    webhook.status = 0
    box = notify.outbox(project)
    assert box.claim("hooks", "another-process", now=time.time(), lease=60)
    result = notify.drain(project, force=True)
    assert (result.busy, result.delivered, webhook.received) == (["hooks"], [], [])
    # a lease that ran out (its holder died) is taken over
    box.release("hooks", "another-process")
    assert box.claim("hooks", "another-process", now=time.time() - 120, lease=60)
    assert len(notify.drain(project, force=True).delivered) == 1


def test_a_missing_secret_variable_keeps_the_notification(
    tmp_path: Path, webhook: HttpReceiver
) -> None:
    body = f'type = "webhook"\nurl = "{webhook.url}"\nsecret_env = "HOOK_SECRET"\n'
    project = make_project(tmp_path, config=config_for(hooks=body), environ={})
    drift(project)
    (row,) = notify.outbox(project).rows()
    assert row.status == "pending"
    assert "the variable HOOK_SECRET (webhook secret) is not set" in row.last_error
    checks = {c.name: c for group in project.hook.register_checks(project=project) for c in group}
    assert not checks["notifier hooks"].ok and "HOOK_SECRET" in checks["notifier hooks"].detail
    assert checks["notification outbox"].detail.startswith("1 pending, 0 failed")


def test_severity_and_event_filters(tmp_path: Path, webhook: HttpReceiver) -> None:
    extra = 'severities = ["critical"]\nevents = ["incident.open", "incident.resolved"]\n'
    project = webhook_project(tmp_path, webhook, extra)
    drift(project, "a", severity="warning")
    incident = drift(project, "b")
    respond.update_incident(project, incident.id, "acknowledged")
    respond.update_incident(project, incident.id, "resolved")
    got = [(r.json["event"], r.json["notification"]["subject"]) for r in webhook.received]
    assert got == [("incident.open", "b"), ("incident.resolved", "b")]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('type = "webhook"\nurl = "http://x"\n', "set secret_env"),
        ('type = "webhook"\nurl = "ftp://x"\nsecret = "s"\n', "must be an http:// or https://"),
        ('type = "slak"\nurl_env = "U"\n', "no plugin provides; did you mean 'slack'"),
        ('type = "email"\nsender = "a@b"\nto = []\n', "'respond.notify.bad.to'"),
        ('type = "pagerduty"\nrouting_key_env = "K"\nevents = ["open"]\n', "event 'open'"),
        ('type = "email"\nsender = "a@b"\nto = ["c@d"]\nusername = "u"\n', "set password_env"),
    ],
)
def test_bad_notifier_tables_are_one_line_errors(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_project(tmp_path, config=config_for(bad=table))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "respond.notify.bad" in str(info.value)


# ---------------------------------------------------------------------------- secrets
def test_secrets_never_reach_logs_records_outbox_or_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = HttpReceiver("webhook", HOOK_SECRET)
    slack = HttpReceiver("slack", SLACK_PATH)
    pd = HttpReceiver("pagerduty", PD_KEY)
    smtp = SmtpReceiver("opsloop", SMTP_PASSWORD)
    env = {**ENV, "SLACK_URL": slack.url}
    config = config_for(
        hooks=f'type = "webhook"\nurl = "{hook.url}"\nsecret_env = "HOOK_SECRET"\n',
        chat='type = "slack"\nurl_env = "SLACK_URL"\n',
        pager=f'type = "pagerduty"\nurl = "{pd.url}"\nrouting_key = "{PD_KEY}"\n',
        mail=email_table(smtp).replace(
            'password_env = "SMTP_PASSWORD"', f'password = "{SMTP_PASSWORD}"'
        ),
    )
    project = make_project(tmp_path, config=config, environ=env)
    incident = drift(project)  # every notifier is down: errors are logged and stored
    for receiver in (hook, slack, pd, smtp):
        receiver.start()
    try:
        respond.update_incident(project, incident.id, "resolved")
        result = notify.drain(project, force=True)
        pd.status = 400  # an error whose answer could echo what was sent
        drift(project, "other")
    finally:
        for receiver in (hook, slack, pd, smtp):
            receiver.stop()
    assert len(result.delivered) == 8
    secrets = [HOOK_SECRET, SLACK_PATH, SLACK_PATH.rsplit("/", 1)[1], PD_KEY, SMTP_PASSWORD]
    out = capsys.readouterr()
    home = project.home
    stored = b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())
    shown = ""
    for args in (["notify", "outbox", "--all", "--json"], ["notify", "list"]):
        shown += opsloop_cli(tmp_path, *args, env=env).stdout
    assert "hooks" in shown and "fraud" in shown and "pagerduty" in shown
    assert f"http://127.0.0.1:{hook.port}/…" in shown and "/hooks/opsloop" not in shown
    for secret in secrets:
        assert secret not in out.out + out.err
        assert secret.encode() not in stored
        assert secret not in shown
    assert "kept in the outbox" in out.err  # the failures were logged, without secrets


def test_cli_test_and_retry_failed(tmp_path: Path, webhook: HttpReceiver) -> None:
    body = f'type = "webhook"\nurl = "{webhook.url}"\nsecret_env = "HOOK_SECRET"\n'
    (tmp_path / "opsloop.toml").write_text(config_for(hooks=body), encoding="utf-8")
    # a wrong secret: the receiver refuses (401), the row is set aside as failed
    sent = opsloop_cli(tmp_path, "notify", "test", "hooks", env={"HOOK_SECRET": "wrong"})
    assert sent.returncode == 1
    assert "hooks: not delivered; it stays in the outbox" in sent.stderr
    assert "HTTP 401" in sent.stderr and "wrong" not in sent.stderr
    # fixed: --retry-failed puts it back in line and delivers it
    flushed = opsloop_cli(tmp_path, "notify", "flush", "--retry-failed", env=ENV)
    assert flushed.returncode == 0, flushed.stderr
    assert flushed.stdout.strip() == "delivered 1, still pending 0, failed 0"
    (got,) = webhook.received
    assert got.json["event"] == "test" and got.json["notification"]["severity"] == "info"
    unknown = opsloop_cli(tmp_path, "notify", "test", "hook", env=ENV)
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip() == "opsloop: error: no notifier named 'hook'; did you mean 'hooks'?"
    )


def test_flush_queues_what_a_crashed_process_left_out(
    tmp_path: Path, webhook: HttpReceiver
) -> None:
    from opsloop.records import IncidentUpdate

    project = webhook_project(tmp_path, webhook)
    incident = drift(project)
    # A process that stored a record and died before its notification was queued: the
    # record is there, the outbox row is not.
    project.records.add(IncidentUpdate(incident_id=incident.id, status="resolved"))
    assert notify.outbox(project).rows() == []
    late = notify.reconcile(project)
    assert len(late) == 1 and late[0].startswith("hooks:inu_")
    assert notify.reconcile(project) == []  # once
    notify.drain(project)
    assert [r.json["event"] for r in webhook.received] == ["incident.open", "incident.resolved"]
    # a notifier never gets what happened before its first event
    body = f'type = "webhook"\nurl = "{webhook.url}"\nsecret_env = "HOOK_SECRET"\n'
    (tmp_path / "opsloop.toml").write_text(config_for(hooks=body, late=body), encoding="utf-8")
    reopened = make_project(tmp_path, environ=ENV)
    assert notify.reconcile(reopened) == []


def test_flush_follow_delivers_when_the_notifier_comes_back(
    tmp_path: Path, webhook: HttpReceiver
) -> None:
    import signal as signals

    extra = "backoff = 0.2\nmax_backoff = 0.4\n"
    project = webhook_project(tmp_path, webhook, extra)
    webhook.status = 503
    drift(project)
    env = {**os.environ, **ENV, "OPSLOOP_PLUGINS__ENABLED": '["core"]'}
    follower = subprocess.Popen(
        [sys.executable, "-c", "from opsloop.cli import main; main()", "--project",
         str(tmp_path), "notify", "flush", "--follow", "--poll", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        box = notify.outbox(project)
        deadline = time.time() + 60  # a bound on waiting, not a speed assertion
        while box.rows()[0].attempts < 3 and time.time() < deadline:
            time.sleep(0.1)  # the follower keeps retrying while the notifier is down
        assert box.rows()[0].attempts >= 3
        webhook.status = 0
        while not webhook.received and time.time() < deadline:
            time.sleep(0.1)
        while box.rows() and time.time() < deadline:
            time.sleep(0.1)
    finally:
        follower.send_signal(signals.SIGINT)
        out, _ = follower.communicate(timeout=30)
    # Ctrl-C ends --follow with where things stand
    assert follower.returncode == 0 and out.strip() == "delivered 1, still pending 0, failed 0"
    assert len(webhook.received) == 1 and box.rows() == []


def test_prune_deletes_only_old_delivered_rows(tmp_path: Path, webhook: HttpReceiver) -> None:
    project = webhook_project(tmp_path, webhook)
    old, new = drift(project, "a"), drift(project, "b")
    webhook.status = 503
    waiting = drift(project, "c")
    box = notify.outbox(project)
    box._db.execute(  # delivered 40 days ago
        "UPDATE notify_outbox SET delivered_at = '2020-01-01T00:00:00+00:00' WHERE event_id = ?",
        (old.id,),
    )
    with pytest.raises(OpsloopError, match="at least 7 days"):
        notify.prune(project, 86400)
    assert notify.prune(project, 30 * 86400) == 1
    left = box.rows(statuses=("pending", "failed", "delivered"))
    assert [r.event_id for r in left] == [new.id, waiting.id]  # the pending one is kept
    (entry,) = [e for e in project.audit.entries() if e["action"] == "notify.prune"]
    assert entry["after"]["rows"] == 1


def test_an_alert_that_opens_no_incident_is_sent_as_an_alert(
    tmp_path: Path, webhook: HttpReceiver
) -> None:
    from opsloop import hookimpl
    from opsloop.interfaces import AlertRule

    class Ticket:
        @hookimpl
        def register_alert_rules(self, project: Project) -> list[AlertRule]:
            return [AlertRule(name="slo-ticket", signal_type="budget_burn", open_incident=False)]

    body = f'type = "webhook"\nurl = "{webhook.url}"\nsecret_env = "HOOK_SECRET"\n'
    project = make_project(tmp_path, Ticket(), config=config_for(hooks=body), environ=ENV)
    project.emit(Signal(source="slo", type="budget_burn", severity="warning", subject="api"))
    (got,) = webhook.received
    n = got.json["notification"]
    assert (got.json["event"], n["rule"], n["incident_id"]) == ("alert", "slo-ticket", None)
    assert n["dedup_key"] == f"opsloop/fraud-scoring/{n['alert_id']}"

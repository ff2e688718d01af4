"""The issue-12 target: alerts raised while every notifier is down are delivered once each
notifier is back, across a restart of opsloop (new processes): 0 lost, 0 duplicated, even
with two processes draining the outbox at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import pytest
from notify_receivers import HttpReceiver, SmtpReceiver

from opsloop.project import Project

# aiosmtpd warns that the plain-text test server takes a login; that is the point here
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

HOOK_SECRET = "whsec-outbox-target-0123456789abcdef"
SLACK_PATH = "/services/T0OPS/B0LOOP/outboxTargetT0ken012345"
PD_KEY = "0utb0xTargetR0utingKey0123456789"
SMTP_PASSWORD = "smtp-outbox-pa55"
INCIDENTS = 5

RAISE_ALERTS = textwrap.dedent(f"""
    import sys
    from opsloop.project import Project
    from opsloop.records import Incident, Signal
    from opsloop.respond import update_incident

    project = Project.open(sys.argv[1])
    for i in range({INCIDENTS}):
        project.emit(Signal(source="target", type="drift", severity="critical",
                            subject=f"model-{{i}}", summary=f"drift on model-{{i}}"))
    first = project.records.list(Incident)[0]
    update_incident(project, first.id, "acknowledged")
    update_incident(project, first.id, "resolved")
""")


def run(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=root,
    )


def test_alerts_raised_while_every_notifier_is_down_arrive_once_after_restarts(
    tmp_path: Path,
) -> None:
    hook = HttpReceiver("webhook", HOOK_SECRET, delay=0.02)
    slack = HttpReceiver("slack", SLACK_PATH, delay=0.02)
    pd = HttpReceiver("pagerduty", PD_KEY, delay=0.02)
    smtp = SmtpReceiver("opsloop", SMTP_PASSWORD)
    (tmp_path / "opsloop.toml").write_text(
        textwrap.dedent(f"""
        [project]
        name = "target"
        [plugins]
        enabled = ["core"]   # the built-ins only: no installed plugin is needed here
        [respond.notify.hooks]
        type = "webhook"
        url = "{hook.url}"
        secret_env = "HOOK_SECRET"
        [respond.notify.chat]
        type = "slack"
        url_env = "SLACK_URL"
        [respond.notify.pager]
        type = "pagerduty"
        url = "{pd.url}"
        routing_key_env = "PD_KEY"
        [respond.notify.mail]
        type = "email"
        port = {smtp.port}
        sender = "opsloop@example.org"
        to = ["oncall@example.org"]
        username = "opsloop"
        password_env = "SMTP_PASSWORD"
        """),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "HOOK_SECRET": HOOK_SECRET,
        "SLACK_URL": slack.url,
        "PD_KEY": PD_KEY,
        "SMTP_PASSWORD": SMTP_PASSWORD,
    }
    cli = ["-c", "from opsloop.cli import main; main()", "--project", str(tmp_path)]
    events_per_notifier = INCIDENTS + 2  # five opened, then the first acknowledged, resolved
    expected = 4 * events_per_notifier

    # 1. Every notifier is down (nothing listens on its port): a process raises the alerts
    #    and exits.
    raised = run(tmp_path, env, "-c", RAISE_ALERTS, str(tmp_path))
    assert raised.returncode == 0, raised.stderr
    assert raised.stderr.count("kept in the outbox") == 4  # each notifier tried once
    # 2. A new process tries again while they are still down: nothing is lost or sent.
    still_down = run(tmp_path, env, *cli, "notify", "flush")
    assert still_down.returncode == 1
    assert f"delivered 0, still pending {expected}, failed 0" in still_down.stdout

    # 3. The notifiers come back; two new processes drain the outbox at the same time.
    for receiver in (hook, slack, pd, smtp):
        receiver.start()
    try:
        flush = [sys.executable, *cli, "notify", "flush"]
        procs = [
            subprocess.Popen(flush, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [p.communicate(timeout=180)[0] for p in procs]
        # a late third drain finds nothing left to send
        after = run(tmp_path, env, *cli, "notify", "flush")
    finally:
        for receiver in (hook, slack, pd, smtp):
            receiver.stop()
    assert after.returncode == 0 and "delivered 0, still pending 0, failed 0" in after.stdout
    delivered = [int(o.split("delivered ")[1].split(",")[0]) for o in outputs]
    assert sum(delivered) == expected, outputs

    # 0 lost, 0 duplicated, every wire format as documented, each notifier in order.
    assert hook.problems == slack.problems == pd.problems == []
    keys = [r.headers["X-Opsloop-Delivery"] for r in hook.received]
    assert len(keys) == len(set(keys)) == events_per_notifier
    bodies = [r.body for r in slack.received]
    assert len(bodies) == len(set(bodies)) == events_per_notifier
    pd_events = Counter((r.json["dedup_key"], r.json["event_action"]) for r in pd.received)
    assert len(pd_events) == events_per_notifier and set(pd_events.values()) == {1}
    message_ids = [message_from_bytes(m.original_content)["Message-ID"] for m in smtp.messages]
    assert len(message_ids) == len(set(message_ids)) == events_per_notifier
    order = [r.json["event"] for r in hook.received]
    assert order == ["incident.open"] * INCIDENTS + ["incident.acknowledged", "incident.resolved"]
    actions = [r.json["event_action"] for r in pd.received]
    assert actions[-2:] == ["acknowledge", "resolve"]

    project = Project.open(tmp_path, environ=env)
    try:
        from opsloop.notify import outbox

        rows = outbox(project).rows(statuses=("pending", "failed", "delivered"))
        assert Counter(r.status for r in rows) == {"delivered": expected}
        audit = [e for e in project.audit.entries() if e["action"] == "notify.deliver"]
        assert sorted(e["target"] for e in audit) == sorted(r.key for r in rows)
        assert project.audit.verify().ok
        listed = json.loads(run(tmp_path, env, *cli, "notify", "outbox", "--json").stdout)
        assert listed == []
    finally:
        project.close()

"""``opsloop notify list|outbox|flush|test``: the notifiers and their outbox."""

from __future__ import annotations

import time

import typer

from opsloop.cli import context
from opsloop.errors import OpsloopError, did_you_mean

notify_app = typer.Typer(
    help="Notifiers and their outbox (webhook, Slack, PagerDuty, e-mail).", no_args_is_help=True
)


@notify_app.command("list")
def notify_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """List the notifiers: configured ones with their type, filters and target."""
    from opsloop.notify import ConfiguredNotifier, notifiers

    project = context.open_project()
    rows = []
    for name, target in notifiers(project).items():
        if isinstance(target, ConfiguredNotifier):
            rows.append(
                {
                    "name": name,
                    "type": target.type,
                    "target": target.target(),
                    "severities": target.common.severities,
                    "events": target.common.events or ["all"],
                }
            )
        else:
            rows.append(
                {
                    "name": name,
                    "type": "plugin",
                    "target": "",
                    "severities": [],
                    "events": ["alert"],
                }
            )
    if as_json:
        context.print_json(rows)
        return
    context.console.print(f"{len(rows)} notifier(s)", style="bold", highlight=False)
    for row in rows:
        sev = ",".join(row["severities"]) or "-"
        context.console.print(
            f"{row['name']:<16} {row['type']:<10} severities {sev:<24} "
            f"events {','.join(row['events'])}  {row['target']}",
            highlight=False,
        )


@notify_app.command("outbox")
def notify_outbox(
    all_: bool = typer.Option(False, "--all", help="Include delivered notifications."),
    notifier: str = typer.Option("", help="Only this notifier's rows."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """List notifications not yet delivered (pending, failed); --all adds delivered ones."""
    from opsloop.notify import outbox

    project = context.open_project()
    statuses = ("pending", "failed", "delivered") if all_ else ("pending", "failed")
    rows = outbox(project).rows(statuses=statuses, notifier=notifier or None)
    if as_json:
        context.print_json([r.to_dict() for r in rows])
        return
    out = context.console
    out.print(f"{len(rows)} notification(s) in the outbox", style="bold", highlight=False)
    now = time.time()
    for r in rows:
        when = ""
        if r.status == "pending":
            wait = r.next_at - now
            when = f"next attempt in {wait:.0f} s" if wait > 0 else "due now"
        elif r.status == "delivered":
            when = f"delivered {str(r.delivered_at)[:19]}"
        out.print(
            f"{r.seq:>5} {r.status:<9} {r.notifier:<16} {r.event:<22} {r.event_id}  "
            f"attempts {r.attempts}  {when}".rstrip(),
            highlight=False,
        )
        if r.last_error and r.status != "delivered":
            out.print(f"      last error: {r.last_error}", highlight=False)


@notify_app.command("flush")
def notify_flush(
    notifier: str = typer.Option("", help="Only this notifier."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Put failed notifications back in line first."
    ),
    follow: bool = typer.Option(
        False, "--follow", help="Keep delivering as rows fall due, with backoff, until Ctrl-C."
    ),
    poll: float = typer.Option(5.0, help="With --follow: longest sleep between passes (s)."),
) -> None:
    """Deliver the outbox now: every pending notification, ignoring the backoff wait."""
    from opsloop.notify import drain, notifiers, outbox, reconcile

    project = context.open_project()
    only = None
    if notifier:
        names = list(notifiers(project))
        if notifier not in names:
            raise OpsloopError(f"no notifier named '{notifier}'" + did_you_mean(notifier, names))
        only = [notifier]
    box = outbox(project)
    if retry_failed:
        count = box.requeue_failed(notifier or None, now=time.time())
        if count:
            project.audit.append("notify.requeue", notifier or "*", after={"rows": count})
    late = reconcile(project)  # notifications a crashed process stored no row for
    if late:
        context.err_console.print(f"queued {len(late)} missed notification(s)", highlight=False)
    result = drain(project, force=True, only=only)
    try:
        while follow:
            due = box.next_due()
            wait = poll if due is None else min(poll, max(0.05, due - time.time()))
            time.sleep(wait)
            more = drain(project, only=only)
            result.delivered += more.delivered
            result.retrying, result.failed = more.retrying, result.failed + more.failed
    except KeyboardInterrupt:  # Ctrl-C ends --follow: say where things stand
        pass
    left = box.rows(statuses=("pending",), notifier=notifier or None)
    failed = box.rows(statuses=("failed",), notifier=notifier or None)
    context.console.print(
        f"delivered {len(result.delivered)}, still pending {len(left)}, failed {len(failed)}"
        + (f"; busy elsewhere: {', '.join(result.busy)}" if result.busy else "")
        + (f"; no longer configured: {', '.join(result.unknown)}" if result.unknown else ""),
        highlight=False,
    )
    if left or failed:
        raise typer.Exit(1)


@notify_app.command("prune")
def notify_prune(
    older_than: str = typer.Option("30d", help="Delete rows delivered longer ago than this."),
) -> None:
    """Delete delivered notifications from the outbox (pending and failed ones stay)."""
    from opsloop.durations import parse_duration
    from opsloop.notify import prune

    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        raise OpsloopError(f"--older-than: {exc}") from None
    count = prune(context.open_project(), seconds)
    context.console.print(f"pruned {count} delivered notification(s)", highlight=False)


@notify_app.command("test")
def notify_test(name: str) -> None:
    """Send a test notification to one notifier through the outbox, and report."""
    from opsloop.interfaces import Notification
    from opsloop.notify import drain, enqueue, notifiers
    from opsloop.records import new_id, utcnow

    project = context.open_project()
    names = list(notifiers(project))
    if name not in names:
        raise OpsloopError(f"no notifier named '{name}'" + did_you_mean(name, names))
    event_id = new_id("tst")
    pname = project.config.project.name
    note = Notification(
        id=event_id,
        event="test",
        action="trigger",
        dedup_key=f"opsloop/{pname}/{event_id}",
        title=f"opsloop test notification from {pname}",
        severity="info",
        project=pname,
        created_at=utcnow(),
    )
    if not enqueue(project, note, only=[name]):
        raise OpsloopError(f"notifier '{name}' does not take test notifications")
    result = drain(project, only=[name], force=True)
    if result.delivered:
        context.console.print(f"{name}: delivered ({result.delivered[0]})", highlight=False)
        return
    raise OpsloopError(
        f"{name}: not delivered; it stays in the outbox (`opsloop notify outbox`)", exit_code=1
    )


def register_cli(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")

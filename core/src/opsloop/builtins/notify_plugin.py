"""Built-in plugin: notifiers of the respond stage and their outbox (see opsloop.notify).

Registers the webhook, Slack, PagerDuty and e-mail notifier types, the notifiers that
``[respond.notify.<name>]`` tables configure, queues a notification for every alert and
incident event, and adds ``opsloop notify``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import NotifierType
    from opsloop.project import Project
    from opsloop.records import Record


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="notify",
        stage="respond",
        summary="notifiers (webhook, Slack, PagerDuty, e-mail) with a durable outbox",
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli.commands_notify import register_cli

    register_cli(cli)


@hookimpl
def register_notifier_types(project: Project) -> list[NotifierType]:
    from opsloop.notify.channels import BUILTIN_TYPES

    return list(BUILTIN_TYPES)


@hookimpl
def register_notifiers(project: Project) -> list[Any]:
    from opsloop.notify import configured_notifiers

    return list(configured_notifiers(project))


@hookimpl
def startup(project: Project) -> None:
    """A bad ``[respond.notify.*]`` table is an error now, not when an incident opens."""
    if project.config.respond.notify:
        from opsloop.notify import configured_notifiers

        configured_notifiers(project)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    """Each configured notifier's secret variable is set; nothing waits in the outbox."""
    if not project.config.respond.notify or project.detached:
        return []
    from opsloop.notify import configured_notifiers, outbox

    out = []
    for notifier in configured_notifiers(project):
        settings = getattr(notifier.inner, "settings", None)
        missing = [
            str(getattr(settings, key))
            for key in ("secret_env", "url_env", "routing_key_env", "password_env")
            if getattr(settings, key, None) and not project.environ.get(getattr(settings, key))
        ]
        detail = f"variable {', '.join(missing)} not set" if missing else notifier.target()
        out.append(CheckResult(f"notifier {notifier.name}", not missing, detail, "notify"))
    rows = outbox(project).rows()
    failed = sum(r.status == "failed" for r in rows)
    out.append(
        CheckResult(
            "notification outbox",
            failed == 0,
            f"{len(rows) - failed} pending, {failed} failed (`opsloop notify outbox`)",
            "notify",
        )
    )
    return out


@hookimpl
def on_record(project: Project, record: Record) -> None:
    from opsloop.notify import on_record as queue_and_send

    queue_and_send(project, record)

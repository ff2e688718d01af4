"""`opsloop incident ...`, `opsloop runbook ...` and `opsloop signals`."""

from __future__ import annotations

import typer

from opsloop.cli import context
from opsloop.errors import ParameterError

incident_app = typer.Typer(help="Incidents opened from alerts.", no_args_is_help=True)
runbook_app = typer.Typer(help="Runbook notebooks: list, inspect, run.", no_args_is_help=True)


@incident_app.command("list")
def incident_list(
    all_: bool = typer.Option(False, "--all", help="Include resolved incidents."),
) -> None:
    """List incidents with their current status."""
    from rich.text import Text

    from opsloop.respond import list_incidents

    project = context.open_project()
    views = list_incidents(project, open_only=not all_)
    console = context.console
    console.print(
        f"{len(views)} {'' if all_ else 'open '}incident(s)", style="bold", highlight=False
    )
    colour = {"critical": "red", "warning": "yellow", "info": "blue"}
    for view in views:
        i = view.incident
        line = Text.assemble(
            f"{i.id}  {view.status:<12} ",
            (f"{i.severity:<8}", colour.get(i.severity, "white")),
            f" {i.subject}  opened {i.created_at[:16].replace('T', ' ')} UTC, "
            f"{len(view.runbook_runs)} runbook run(s)",
        )
        console.print(line, highlight=False)
        console.print(f"    {i.title}", highlight=False)


@incident_app.command("show")
def incident_show(incident_id: str) -> None:
    """Show an incident, its alerts, updates and runbook runs."""
    from rich.text import Text

    from opsloop.respond import incident_view, runbook_runs_for

    project = context.open_project()
    view = incident_view(project, incident_id)
    i = view.incident
    c = context.console
    c.print(Text.assemble((i.id, "bold"), f" {i.title}"))
    c.print(f"severity {i.severity}, status {view.status}, opened {i.created_at}")
    for alert_id in i.alert_ids:
        alert = project.records.get(alert_id)
        c.print(f"  alert {alert_id}: {getattr(alert, 'summary', '')}")
    for update in view.updates:
        what = update.status or (
            f"runbook run {update.runbook_run_id}" if update.runbook_run_id else ""
        )
        c.print(f"  {update.created_at[:19]} {what} {update.note}".rstrip())
    for run in runbook_runs_for(project, incident_id):
        c.print(f"  runbook {run.runbook}: {run.status} -> {run.output_path}")


def _set_status(incident_id: str, status: str, note: str) -> None:
    from opsloop.respond import update_incident

    update_incident(context.open_project(), incident_id, status, note)
    context.console.print(f"{incident_id}: {status}")


@incident_app.command("ack")
def incident_ack(incident_id: str, note: str = typer.Option("", help="Why.")) -> None:
    """Acknowledge an incident (audited)."""
    _set_status(incident_id, "acknowledged", note)


@incident_app.command("resolve")
def incident_resolve(incident_id: str, note: str = typer.Option("", help="What fixed it.")) -> None:
    """Resolve an incident (audited)."""
    _set_status(incident_id, "resolved", note)


@runbook_app.command("list")
def runbook_list() -> None:
    """List runbooks and their parameters."""
    from rich.table import Table

    from opsloop.runbooks import inspect_parameters, list_runbooks

    project = context.open_project()
    table = Table(title="runbooks", title_justify="left")
    for col in ("name", "summary", "parameters", "path"):
        table.add_column(col, overflow="fold")
    for spec in list_runbooks(project):
        params = ", ".join(f"{p.name}: {p.type}" for p in inspect_parameters(spec).values())
        table.add_row(spec.name, spec.summary, params, str(spec.path))
    context.console.print(table)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ParameterError(f"parameter '{pair}' is not KEY=VALUE")
        out[key.strip()] = value
    return out


@runbook_app.command("run")
def runbook_run(
    name: str,
    param: list[str] = typer.Option([], "--param", "-P", help="KEY=VALUE; repeat for more."),
    incident: str = typer.Option("", help="Incident id to link the run to."),
    timeout: float | None = typer.Option(
        None, min=0, help="Seconds per cell.", show_default="[respond] runbook_timeout"
    ),
) -> None:
    """Run a runbook with typed parameters; the executed copy is kept under the project home."""
    from opsloop.runbooks import run_runbook

    project = context.open_project()
    run = run_runbook(
        project,
        name,
        _parse_params(param),
        incident_id=incident or None,
        timeout=timeout or None,
    )
    if run.status != "succeeded":
        print(f"opsloop: runbook '{name}' failed: {run.error} (see {run.output_path})",
              file=__import__("sys").stderr)  # fmt: skip
        raise typer.Exit(1)
    context.console.print(f"runbook {name}: {run.status} -> {run.output_path} ({run.id})")


def signals_command(limit: int = typer.Option(20, "--limit", "-n")) -> None:
    """Show the newest signals from monitors and guards."""
    from rich.table import Table

    from opsloop.records import Signal

    project = context.open_project()
    table = Table(title="signals", title_justify="left")
    for col in ("id", "time", "type", "severity", "subject", "summary"):
        table.add_column(col, overflow="fold")
    for s in project.records.list(Signal, limit=limit):
        table.add_row(s.id, s.created_at[:19], s.type, s.severity, s.subject, s.summary)
    context.console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")
    app.add_typer(runbook_app, name="runbook")
    app.command("signals")(signals_command)

"""`opsloop audit show` and `opsloop audit verify`."""

from __future__ import annotations

import json

import typer

from opsloop.cli import context

audit_app = typer.Typer(help="Read and verify the hash-chained audit log.", no_args_is_help=True)


@audit_app.command("show")
def show(
    limit: int = typer.Option(50, "--limit", "-n", help="Newest N entries (0: all)."),
    action: str = typer.Option("", help="Only entries whose action starts with this."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
) -> None:
    """Show audit entries, oldest first."""
    from rich.table import Table

    project = context.open_project()
    entries = [e for e in project.audit.entries() if e.get("action", "").startswith(action)]
    if limit:
        entries = entries[-limit:]
    if as_json:
        for e in entries:
            print(json.dumps(e, sort_keys=True))
        return
    table = Table(title=f"audit log: {project.audit.path}", title_justify="left")
    for col in ("seq", "time", "actor", "action", "target", "change"):
        table.add_column(col, overflow="fold")
    for e in entries:
        change = ""
        if e.get("before") is not None or e.get("after") is not None:
            change = f"{json.dumps(e.get('before'))} -> {json.dumps(e.get('after'))}"
        table.add_row(
            str(e["seq"]), e["time"][:19], e["actor"], e["action"], e["target"], change[:200]
        )
    context.console.print(table)


@audit_app.command("verify")
def verify() -> None:
    """Recompute the hash chain; exit 1 naming the first edited, removed or moved entry."""
    project = context.open_project()
    result = project.audit.verify()
    if result.ok:
        context.console.print(f"audit log OK: {result.entries} entries, chain intact")
        return
    print(
        f"opsloop: audit log {project.audit.path}: entry {result.bad_seq} is bad: {result.reason}",
        file=__import__("sys").stderr,
    )
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")

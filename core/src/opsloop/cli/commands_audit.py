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
    project = context.open_project()
    entries = [e for e in project.audit.entries() if e.get("action", "").startswith(action)]
    if limit:
        entries = entries[-limit:]
    if as_json:
        for e in entries:
            print(json.dumps(e, sort_keys=True))
        return
    from rich.text import Text

    console = context.console
    console.print(
        Text.assemble(("audit log", "bold"), f" {project.audit.path} ({len(entries)} shown)"),
        highlight=False,
    )
    for e in entries:
        head = Text.assemble(
            f"{e['seq']:>5} {e['time'][:19].replace('T', ' ')} {e['actor']:<10} ",
            (str(e["action"]), "bold"),
            f" {e['target']}",
        )
        console.print(head, highlight=False, overflow="fold")
        change = _change(e.get("before"), e.get("after"))
        if change:
            console.print(f"      {change}", highlight=False, overflow="ellipsis", no_wrap=True)


@audit_app.command("verify")
def verify() -> None:
    """Recheck every entry's HMAC and link, the head, and each record against the hash its
    entry committed to; exit 1 naming the first edited, removed or moved entry or record."""
    import sys

    project = context.open_project()
    result = project.verify_audit()
    for warning in result.warnings:
        print(f"opsloop: warning: audit log: {warning}", file=sys.stderr)
    if result.ok:
        context.console.print(f"audit log OK: {result.describe()}", highlight=False)
        return
    print(f"opsloop: audit log {project.audit.path}: {result.describe()}", file=sys.stderr)
    raise typer.Exit(1)


def _brief(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(
            f"{k}={_brief(v)}" for k, v in value.items() if v not in (None, "", [], {})
        )
    if isinstance(value, list):
        return "[" + ", ".join(_brief(v) for v in value[:3]) + (", ..." if len(value) > 3 else "]")
    return str(value)


def _change(before: object, after: object) -> str:
    """One short line: ``before -> after``; `--json` shows everything."""
    if before in (None, {}) and after in (None, {}):
        return ""
    if before in (None, {}):
        return _brief(after)
    if after in (None, {}):
        return f"{_brief(before)} -> (none)"
    return f"{_brief(before)} -> {_brief(after)}"


def register_cli(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")

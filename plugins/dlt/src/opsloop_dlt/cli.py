"""``opsloop ingest``: run loads, list sources, show recent loads."""

from __future__ import annotations

import json

import typer

app = typer.Typer(
    name="ingest",
    help="Load sources into the warehouse (incrementally) and show what was loaded.",
    no_args_is_help=True,
)


@app.command("run")
def run_command(
    sources: list[str] = typer.Argument(
        None, help="Sources to load (default: every registered source)."
    ),
) -> None:
    """Load the named sources (or all); each load is recorded and audited."""
    from opsloop import ingest
    from opsloop.cli.context import console, err_console, open_project
    from opsloop.errors import OpsloopError

    project = open_project()
    chosen = (
        [ingest.get_source(project, name) for name in sources]
        if sources
        else ingest.list_sources(project)
    )
    if not chosen:
        raise OpsloopError(
            "no sources to load; declare them under [plugin.dlt] sources in opsloop.toml "
            "(see `opsloop ingest list`)"
        )
    failed: list[str] = []
    for source in chosen:
        try:
            load = ingest.run_load(project, source)
        except OpsloopError as exc:
            failed.append(source.name)
            err_console.print(f"{source.name}: failed: {exc}", markup=False, highlight=False)
            continue
        if load.status == "empty":
            console.print(f"{source.name}: nothing new (empty load)", highlight=False)
        else:
            tables = ", ".join(f"{load.dataset}.{t} {n} rows" for t, n in load.tables.items())
            console.print(
                f"{source.name}: loaded {tables} (load {', '.join(load.load_ids)}; "
                f"record {load.id})",
                highlight=False,
            )
    if failed:
        raise OpsloopError(f"{len(failed)} of {len(chosen)} source(s) failed: {', '.join(failed)}")


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the sources plugins register (from opsloop.toml and elsewhere)."""
    from rich.table import Table

    from opsloop import ingest
    from opsloop.cli.context import console, open_project
    from opsloop.redact import redact

    project = open_project()
    sources = ingest.list_sources(project)
    if as_json:
        rows = [
            {
                "name": s.name,
                "kind": s.kind,
                "dataset": s.dataset,
                "write_disposition": s.write_disposition,
                "primary_key": list(s.primary_key),
                "incremental": s.incremental,
                "options": redact(dict(s.options)),
            }
            for s in sources
        ]
        print(json.dumps(rows, indent=2, default=str))
        return
    if not sources:
        console.print("no sources; declare them under [plugin.dlt] sources in opsloop.toml")
        return
    table = Table(title="opsloop sources", title_justify="left")
    for col in ("source", "kind", "from", "into", "write", "key"):
        table.add_column(col, overflow="fold")
    for s in sources:
        origin = s.options.get("path") or s.options.get("table") or ""
        if s.kind == "landing_files":
            origin = f"{origin}/{s.options.get('glob', '*.csv')}"
        table.add_row(
            s.name,
            s.kind,
            str(origin),
            f"{s.dataset}.{s.name}",
            s.write_disposition,
            ", ".join(s.primary_key) or "-",
        )
    console.print(table)


@app.command("loads")
def loads_command(
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many recent loads."),
    source: str | None = typer.Option(None, "--source", "-s", help="Only this source."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show recent loads (newest last): status, rows, dlt load ids."""
    from rich.table import Table
    from rich.text import Text

    from opsloop.cli.context import console, open_project
    from opsloop.records import LoadRecord

    project = open_project()
    loads = project.records.list(LoadRecord)
    if source:
        loads = [r for r in loads if r.source == source]
    loads = loads[-limit:]
    if as_json:
        print(json.dumps([r.to_dict() for r in loads], indent=2, default=str))
        return
    if not loads:
        console.print("no loads yet; run `opsloop ingest run`")
        return
    table = Table(title="recent loads", title_justify="left")
    for col in ("record", "finished", "source", "status", "rows", "load ids"):
        table.add_column(col, overflow="fold")
    for r in loads:
        status = Text(r.status, {"loaded": "green", "failed": "red"}.get(r.status, ""))
        table.add_row(
            r.id,
            (r.finished_at or r.created_at)[:19].replace("T", " "),
            r.source,
            status,
            str(r.rows),
            ", ".join(r.load_ids) or "-",
        )
    console.print(table)


def register(cli: typer.Typer) -> None:
    """Add ``opsloop ingest ...`` to the CLI."""
    cli.add_typer(app, name="ingest")

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
        origin = s.options.get("path") or s.options.get("table") or s.options.get("base_url") or ""
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


quarantine_app = typer.Typer(
    name="quarantine",
    help="Rows that broke a source's data contract: list, show, release after a fix.",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Pending quarantined rows per source and rule."""
    from collections import Counter

    from rich.table import Table

    from opsloop import ingest
    from opsloop.cli.context import console, open_project
    from opsloop_dlt.quarantine import pending

    project = open_project()
    summary = []
    for source in ingest.list_sources(project):
        if not source.contract:
            continue
        rows = pending(project, source)
        rules: Counter[str] = Counter()
        for row in rows:
            rules.update(r.strip() for r in row.rules.split(","))
        summary.append(
            {
                "source": source.name,
                "contract": source.contract,
                "rows": len(rows),
                "rules": dict(rules.most_common()),
            }
        )
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    if not summary:
        console.print("no source names a contract; see docs/plugins/dlt.md (contracts)")
        return
    table = Table(title="quarantined rows (pending)", title_justify="left")
    for col in ("source", "contract", "rows", "rules broken"):
        table.add_column(col, overflow="fold")
    for item in summary:
        rules_text = ", ".join(f"{k} {v}" for k, v in item["rules"].items()) or "-"
        table.add_row(item["source"], item["contract"], str(item["rows"]), rules_text)
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(
    source: str = typer.Argument(..., help="The source whose quarantined rows to show."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many rows."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The pending quarantined rows of one source: id, where from, rules broken, the row."""
    from rich.table import Table

    from opsloop import ingest
    from opsloop.cli.context import console, open_project
    from opsloop_dlt.quarantine import pending

    project = open_project()
    rows = pending(project, ingest.get_source(project, source), limit=limit)
    if as_json:
        print(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return
    if not rows:
        console.print(f"{source}: no quarantined rows pending")
        return
    table = Table(title=f"{source}: quarantined rows", title_justify="left")
    for col in ("id", "from", "line", "rules", "row", "load id"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r.qid,
            r.source,
            str(r.line or "-"),
            r.rules,
            json.dumps(r.row, default=str),
            r.load_id,
        )
    console.print(table)


@quarantine_app.command("release")
def quarantine_release(
    source: str = typer.Argument(..., help="The source whose quarantined rows to release."),
    ids: list[str] = typer.Option(None, "--id", help="Only these row ids (default: all)."),
) -> None:
    """Re-check quarantined rows against the current contract; load those that pass."""
    from opsloop import ingest
    from opsloop.cli.context import console, open_project
    from opsloop_dlt.quarantine import release

    project = open_project()
    result = release(project, ingest.get_source(project, source), ids or None)
    if not result.released and not result.still_failing:
        console.print(f"{source}: no quarantined rows pending", highlight=False)
        return
    still = ", ".join(f"{k} {v}" for k, v in result.rules.items())
    console.print(
        f"{source}: released {result.released} row(s)"
        + (f" (load {', '.join(result.load_ids)})" if result.load_ids else "")
        + (f"; {result.still_failing} still break the contract ({still})" if still else ""),
        highlight=False,
    )


def register(cli: typer.Typer) -> None:
    """Add ``opsloop ingest ...`` to the CLI."""
    cli.add_typer(app, name="ingest")

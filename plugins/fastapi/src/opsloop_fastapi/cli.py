"""``opsloop serve NAME`` and ``opsloop batch score NAME``: online and batch scoring."""

from __future__ import annotations

import os
from pathlib import Path

import typer

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def serve(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Option(
        "champion", "--alias", "-a", help="Alias (or version number) to serve: NAME@ALIAS."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (loopback by default)."
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port (0: any free port)."),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Worker processes; each loads the model itself."
    ),
) -> None:
    """Serve NAME@ALIAS with FastAPI + uvicorn until Ctrl-C (MLflow-compatible /invocations)."""
    from opsloop.cli.context import err_console, open_project
    from opsloop_fastapi.server import (
        bind_socket,
        load_checked,
        model_store,
        open_app,
        url_for,
        uvicorn_config,
    )

    project = open_project()
    settings = project.settings("fastapi")
    store = model_store(project)
    ref = store.resolve(name, alias)
    if workers == 1:
        app = open_app(project, ref, alias=alias, settings=settings, store=store)
    else:
        load_checked(project, store, ref)  # fail here, in one line, not in every worker
    sock = bind_socket(host, port)
    url = url_for(host, sock.getsockname()[1])
    if host not in LOOPBACK and not settings.token():
        err_console.print(
            f"opsloop: warning: listening on {host}, reachable from other machines; scoring "
            "has no authentication, so put it behind a proxy that authenticates",
            markup=False,
            highlight=False,
        )
    target = f"{ref.name}/{ref.version}"
    audit = {"url": url, "alias": alias, "workers": workers}
    project.audit.append("serve.start", target, after=audit, detail={"plugin": "fastapi"})
    print(
        f"serving {ref.name} version {ref.version} ({name}@{alias}) on {url}; {workers} "
        f"worker{'s' if workers > 1 else ''}, Ctrl-C to stop",
        flush=True,
    )
    import uvicorn

    try:
        if workers == 1:
            uvicorn.Server(uvicorn_config(app, settings, embedded=False)).run(sockets=[sock])
        else:
            from uvicorn.supervisors import Multiprocess

            from opsloop_fastapi.workers import worker_environ

            source = Path(project.config.source)
            where = source if source.is_file() else project.root
            os.environ.update(worker_environ(where, name, alias))
            config = uvicorn_config(
                "opsloop_fastapi.workers:create_worker_app",
                settings,
                embedded=False,
                workers=workers,
            )
            Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass  # uvicorn already shut down gracefully and re-raised the signal
    finally:
        sock.close()
        project.audit.append("serve.stop", target, before=audit, detail={"plugin": "fastapi"})
    print(f"stopped serving {ref.name} version {ref.version}")


batch_app = typer.Typer(help="Score files or tables in chunks with a registered model.")


@batch_app.command("score", no_args_is_help=True)
def batch_score(
    name: str = typer.Argument(..., help="Registered model name."),
    input: str = typer.Option(
        ...,
        "--input",
        "-i",
        help="Parquet file or folder, CSV file, or duckdb:DATASET.TABLE from the warehouse.",
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Output folder of part-NNNNN.parquet files."
    ),
    alias: str = typer.Option("champion", "--alias", "-a", help="Alias or version number."),
    chunk_size: int = typer.Option(
        0, "--chunk-size", min=0, help="Rows per output part (default: batch_chunk_rows)."
    ),
) -> None:
    """Score INPUT with NAME@ALIAS into OUTPUT; a re-run skips the parts already written."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from opsloop.cli.context import console, err_console, open_project
    from opsloop_fastapi.batch import score_anywhere
    from opsloop_fastapi.server import model_store

    project = open_project()
    settings = project.settings("fastapi")
    ref = model_store(project).resolve(name, alias)
    with Progress(
        TextColumn("{task.description}", markup=False),  # the console prints no markup
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(f"scoring with {ref.name} v{ref.version}", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        def note(text: str) -> None:
            err_console.print(f"opsloop: {text}", markup=False, highlight=False)

        result, engine = score_anywhere(
            project,
            ref,
            input,
            output,
            chunk_rows=chunk_size or settings.batch_chunk_rows,
            progress=advance,
            note=note,
        )
    from opsloop.serve import audit_batch

    extra = {"engine": engine} if engine else {}
    audit_batch(
        project,
        ref,
        input,
        output,
        result.rows,
        parts=result.parts,
        skipped=result.skipped,
        written=result.written,
        **extra,
    )
    console.print(
        f"scored {result.rows} rows into {result.parts} parts in {output} "
        + (f"on {engine} " if engine else "")
        + f"({result.skipped} parts already done, {result.written} written)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def register(cli: typer.Typer) -> None:
    """Add ``opsloop serve`` and ``opsloop batch`` to the CLI."""
    cli.command("serve", no_args_is_help=True)(serve)
    cli.add_typer(batch_app, name="batch")

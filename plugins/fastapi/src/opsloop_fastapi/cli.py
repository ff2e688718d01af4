"""``opsloop serve NAME``: score a registered model over HTTP in the foreground."""

from __future__ import annotations

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
) -> None:
    """Serve NAME@ALIAS with FastAPI + uvicorn until Ctrl-C (MLflow-compatible /invocations)."""
    from opsloop.cli.context import err_console, open_project
    from opsloop_fastapi.app import create_app
    from opsloop_fastapi.server import bind_socket, model_store, url_for, uvicorn_config
    from opsloop_fastapi.settings import load_settings

    project = open_project()
    settings = load_settings(project)
    ref = model_store(project).resolve(name, alias)
    model = model_store(project).load(ref)
    app = create_app(project, ref, model, settings=settings)
    sock = bind_socket(host, port)
    url = url_for(host, sock.getsockname()[1])
    if host not in LOOPBACK:
        err_console.print(
            f"opsloop: warning: listening on {host}, reachable from other machines, with no "
            "authentication; put it behind a proxy that authenticates",
            markup=False,
            highlight=False,
        )
    target = f"{ref.name}/{ref.version}"
    audit = {"url": url, "alias": alias}
    project.audit.append("serve.start", target, after=audit, detail={"plugin": "fastapi"})
    print(f"serving {ref.name} version {ref.version} ({name}@{alias}) on {url}; Ctrl-C to stop")
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, settings, embedded=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn already shut down gracefully and re-raised the signal
    finally:
        sock.close()
        project.audit.append("serve.stop", target, before=audit, detail={"plugin": "fastapi"})
    print(f"stopped serving {ref.name} version {ref.version}")


def register(cli: typer.Typer) -> None:
    """Add ``opsloop serve`` to the CLI."""
    cli.command("serve", no_args_is_help=True)(serve)

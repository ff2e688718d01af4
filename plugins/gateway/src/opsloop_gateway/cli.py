"""``opsloop guard serve`` (the gateway) and ``opsloop guard key NAME`` (a new caller key),
added to the core's ``opsloop guard`` group."""

from __future__ import annotations

import typer

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def serve(
    host: str | None = typer.Option(None, "--host", help="Address (default: settings, loopback)."),
    port: int | None = typer.Option(
        None, "--port", min=0, max=65535, help="Port (default: settings, 8080; 0: any free)."
    ),
    upstream: str | None = typer.Option(
        None, "--upstream", help="OpenAI-compatible upstream base URL (default: settings)."
    ),
) -> None:
    """Serve the guarded OpenAI-compatible /v1/chat/completions until Ctrl-C."""
    import socket

    from opsloop.cli.context import err_console, open_project
    from opsloop.errors import OpsloopError

    project = open_project()
    settings = project.settings("gateway")
    updates: dict[str, object] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if upstream is not None:
        updates["upstream"] = upstream.rstrip("/")
    if updates:
        settings = settings.model_copy(update=updates)
    from opsloop_gateway.app import create_app

    app = create_app(project, settings)
    try:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        raise OpsloopError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}; pick another --port"
        ) from None
    bound = sock.getsockname()[1]
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{shown}:{bound}/v1"
    if settings.host not in LOOPBACK:
        err_console.print(
            f"opsloop: warning: listening on {settings.host}, reachable from other machines; "
            "use TLS in front of it (keys travel in the Authorization header)",
            markup=False,
            highlight=False,
        )
    audit = {"url": url, "upstream": settings.upstream, "callers": len(settings.keys)}
    project.audit.append("gateway.start", "gateway", after=audit, detail={"plugin": "gateway"})
    print(f"guard gateway on {url} -> {settings.upstream}; Ctrl-C to stop", flush=True)
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        project.audit.append("gateway.stop", "gateway", before=audit, detail={"plugin": "gateway"})
    print("stopped the guard gateway")


def key(
    name: str = typer.Argument(..., help="The caller's name."),
    tenant: str | None = typer.Option(None, "--tenant", help="The caller's tenant."),
) -> None:
    """Make a new API key for caller NAME: prints the key once, and the settings lines that
    store only its SHA-256."""
    from opsloop_gateway.keys import hash_key, new_key

    value = new_key()
    print(f"key for {name} (shown once; give it to the caller): {value}")
    print("\nadd to opsloop.toml:\n")
    print("[[plugin.gateway.keys]]")
    print(f'name = "{name}"')
    print(f'sha256 = "{hash_key(value)}"')
    if tenant:
        print(f'tenant = "{tenant}"')


def register(cli: typer.Typer) -> None:
    """Add ``serve`` and ``key`` to ``opsloop guard`` (the core's group)."""
    from opsloop.guard.cli import app as guard_app

    names = {c.name for c in guard_app.registered_commands}
    if "serve" not in names:
        guard_app.command("serve")(serve)
    if "key" not in names:
        guard_app.command("key", no_args_is_help=True)(key)

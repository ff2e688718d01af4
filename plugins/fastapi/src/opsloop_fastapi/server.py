"""Run the scoring app under a real uvicorn server, in a background thread or the foreground.

The listening socket is bound here, before uvicorn starts, so that port 0 yields the real
port at once and "address in use" is a clean one-line OpsloopError instead of an exit.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from opsloop.errors import IntegrityError, OpsloopError
from opsloop_fastapi.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from opsloop.project import Project
    from opsloop.records import ModelVersionRef

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: the OS picks a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise OpsloopError(
            f"cannot listen on {host}:{port}: unknown host ({exc.strerror})"
        ) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OpsloopError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
            "or stop the process that holds it"
        ) from None
    return sock


def url_for(host: str, port: int) -> str:
    """The URL a local client uses (a wildcard address becomes loopback)."""
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_config(
    app: FastAPI | str, settings: Settings, *, embedded: bool, workers: int = 1
) -> Any:
    """The uvicorn config; embedded servers leave the host's logging configuration alone.

    ``app`` may be an import string of an app factory (``--workers``: each worker process
    imports it and builds its own app).
    """
    import uvicorn

    from opsloop_fastapi.connlimits import CONFIG_ATTRIBUTE, protocol_path

    options: dict[str, Any] = {
        "timeout_graceful_shutdown": int(max(1, settings.shutdown_timeout)),
        "lifespan": "on",
        "server_header": False,
        "access_log": settings.access_log,
        "loop": "auto",  # uvloop when installed
        "http": protocol_path(),  # httptools when installed, with a deadline on headers
        # slow or idle clients: past max_connections new requests get 503, idle keep-alive
        # connections close after keep_alive_seconds (bodies: body_timeout_seconds, a 408)
        "limit_concurrency": settings.max_connections or None,
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
    if embedded:
        options.update(log_config=None)
    if isinstance(app, str):
        options.update(factory=True, workers=workers)
    config = uvicorn.Config(app, **options)
    setattr(config, CONFIG_ATTRIBUTE, settings.header_timeout_seconds)
    return config


class UvicornHandle:
    """A uvicorn server running in a background thread (implements ServerHandle)."""

    def __init__(
        self, server: Any, thread: threading.Thread, sock: socket.socket, url: str, app: FastAPI
    ) -> None:
        self.server = server
        self.thread = thread
        self.url = url
        self.port: int = sock.getsockname()[1]
        self.app = app
        self._sock = sock
        self._stopped = False
        self._on_stop: list[Any] = []

    def stop(self, timeout: float | None = None) -> None:
        """Shut down gracefully: finish requests, flush the prediction log, free the port."""
        if self._stopped:
            return
        self._stopped = True
        state = self.app.state.opsloop
        limit = timeout if timeout is not None else state.settings.shutdown_timeout * 2 + 5
        self.server.should_exit = True
        self.thread.join(limit)
        if self.thread.is_alive():  # a stuck request: cancel it rather than hang
            self.server.force_exit = True
            self.thread.join(5)
            state.stop()  # the lifespan did not run its shutdown: flush the log here
        self._sock.close()
        for callback in self._on_stop:
            callback()

    def __enter__(self) -> UvicornHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<UvicornHandle {self.url}{' stopped' if self._stopped else ''}>"


def serve_in_thread(
    app: FastAPI, host: str, port: int, settings: Settings | None = None
) -> UvicornHandle:
    """Run ``app`` on ``host:port`` in a daemon thread; return once /health answers."""
    import uvicorn

    settings = settings or app.state.opsloop.settings
    sock = bind_socket(host, port)
    real_port = sock.getsockname()[1]
    url = url_for(host, real_port)
    server = uvicorn.Server(uvicorn_config(app, settings, embedded=True))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"opsloop-serve-{real_port}", daemon=True)
    thread.start()
    handle = UvicornHandle(server, thread, sock, url, app)
    deadline = time.monotonic() + settings.startup_timeout
    probe_host = _WILDCARDS.get(host, host)
    while True:
        if not thread.is_alive():
            sock.close()
            why = f": {type(failure[0]).__name__}: {failure[0]}" if failure else ""
            raise OpsloopError(f"the scoring server on {url} stopped during start-up{why}")
        if server.started and _healthy(probe_host, real_port):
            return handle
        if time.monotonic() > deadline:
            handle.stop(timeout=5)
            raise OpsloopError(
                f"the scoring server on {url} did not answer /health within "
                f"{settings.startup_timeout:g} s; raise plugin.fastapi.startup_timeout"
            )
        time.sleep(0.02)


def _healthy(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def model_store(project: Project) -> Any:
    """The registry backend (the ``model_store`` hook); a clear error when none answers."""
    from opsloop_fastapi.follow import store_of

    return store_of(project)


def load_checked(project: Project, store: Any, ref: ModelVersionRef) -> Any:
    """``store.load(ref)``; a tampered or unverifiable artifact also raises an
    ``integrity`` signal (the ``artifact-integrity`` rule opens an incident)."""
    try:
        return store.load(ref)
    except IntegrityError as exc:
        from opsloop.registry.access import report_integrity

        report_integrity(project, ref.name, ref.version, exc, "load")
        raise


def open_app(
    project: Project,
    ref: ModelVersionRef,
    *,
    alias: str | None = None,
    settings: Settings | None = None,
    store: Any = None,
) -> FastAPI:
    """Load ``ref`` (and the challenger, when canary or shadow is on) and build the app."""
    from opsloop_fastapi.app import create_app
    from opsloop_fastapi.follow import artifact_digest, load_served

    settings = settings or project.settings("fastapi")
    store = store or model_store(project)
    model = load_checked(project, store, ref)
    if alias is None and "champion" in ref.aliases:
        alias = "champion"
    challenger = None
    if settings.canary_share > 0 or settings.shadow:
        try:
            challenger = load_served(
                project,
                ref.name,
                settings.challenger_alias,
                compile_models=settings.compile_models,
                store=store,
            )
        except OpsloopError as exc:
            import logging

            logging.getLogger("opsloop_fastapi.server").warning(
                "no challenger for %s (%s); serving the champion only until it appears",
                ref.name,
                exc,
            )
    return create_app(
        project,
        ref,
        model,
        settings=settings,
        alias=alias,
        challenger=challenger,
        digest=artifact_digest(store, ref, model),
    )


def start_server(project: Project, ref: ModelVersionRef, host: str, port: int) -> UvicornHandle:
    """Load ``ref``, build its app and serve it on ``host:port`` in the background."""
    settings = project.settings("fastapi")
    app = open_app(project, ref, settings=settings)
    handle = serve_in_thread(app, host, port, settings)
    # opsloop.serve.start_server audits the start; the stop is this plugin's to record.
    handle._on_stop.append(
        lambda: project.audit.append(
            "serve.stop",
            f"{ref.name}/{ref.version}",
            before={"url": handle.url},
            detail={"plugin": "fastapi"},
        )
    )
    return handle

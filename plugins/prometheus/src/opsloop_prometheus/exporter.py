"""The standalone exporter: the monitor metrics on their own port, for a Prometheus to scrape
when no serving app runs beside the checks (batch scoring, a watch on another machine).

It serves what :class:`~opsloop_prometheus.collector.MonitorCollector` reads from the state
file, plus the exporter's own process metrics, from a thread of this process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import threading

    from opsloop.project import Project


@dataclass
class Exporter:
    """A running exporter: its URL and how to stop it."""

    host: str
    port: int
    server: Any
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_exporter(project: Project, host: str, port: int) -> Exporter:
    """Serve the project's monitor metrics (and the collectors every plugin registers through
    ``register_metrics``) on ``host:port`` (0: any free port) from a daemon thread."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.process_collector import ProcessCollector

    from opsloop.errors import OpsloopError

    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    for collectors in project.hook.register_metrics(project=project):
        for collector in collectors or ():
            registry.register(collector)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OpsloopError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port"
        ) from None
    return Exporter(host=host, port=int(server.server_port), server=server, thread=thread)

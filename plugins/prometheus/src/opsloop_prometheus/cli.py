"""`opsloop monitor exporter | rules | dashboard`, added to the core's ``monitor`` group."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from opsloop.watch import Findings

NAME = "prometheus"
logger = logging.getLogger(__name__)


def _write(text: str, output: Path | None, what: str) -> None:
    from opsloop.cli import context
    from opsloop.errors import OpsloopError

    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        temporary = output.with_name(f".{output.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(output)
    except OSError as exc:
        raise OpsloopError(f"cannot write {output}: {exc.strerror or exc}") from None
    context.console.print(
        f"wrote {what} to {output}", markup=False, highlight=False, soft_wrap=True
    )


def rules(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the rule file here (default: standard output)."
    ),
) -> None:
    """Prometheus rules: SLO burn-rate alerts from [plugin.prometheus.slo] and drift,
    data-quality and model-quality alerts, with their recording rules.

    Check them with `promtool check rules FILE`, load them with `rule_files:` in
    prometheus.yml.
    """
    from opsloop.cli import context
    from opsloop_prometheus.rules import render_rules

    project = context.open_project(detached_ok=True)
    _write(render_rules(project.settings(NAME)), output, "Prometheus rules")


def dashboard(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the dashboard JSON here (default: standard output)."
    ),
) -> None:
    """A Grafana dashboard (JSON) of serving, SLOs, drift, data quality and model quality;
    import it in Grafana (Dashboards > New > Import) and pick the Prometheus data source."""
    from opsloop_prometheus.dashboard import render_dashboard

    _write(render_dashboard(), output, "the Grafana dashboard")


def exporter(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default: [plugin.prometheus] exporter_host)."
    ),
    port: int | None = typer.Option(
        None, "--port", help="Port (default: [plugin.prometheus] exporter_port, 9108; 0: any)."
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Also check every served model each --interval (monitor watch)."
    ),
    interval: str | None = typer.Option(
        None,
        "--interval",
        "-i",
        help="Time between checks with --watch (default: [monitor] interval).",
    ),
) -> None:
    """Serve the drift, data-quality and model-quality metrics on their own /metrics until
    Ctrl-C, for a Prometheus to scrape where no serving app runs; --watch runs the checks
    in the same process."""
    from opsloop.cli import context
    from opsloop.durations import parse_duration
    from opsloop.errors import OpsloopError, one_line
    from opsloop_prometheus.exporter import start_exporter

    project = context.open_project()
    settings = project.settings(NAME)
    span = interval or project.config.monitor.interval
    try:
        seconds = parse_duration(span)
    except ValueError as exc:
        raise OpsloopError(f"--interval: {exc}") from None
    running = start_exporter(
        project, host or settings.exporter_host, settings.exporter_port if port is None else port
    )
    stop = threading.Event()

    def terminate(*_: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, terminate)
    context.console.print(
        f"serving monitor metrics on {running.url}"
        + (f", checking every served model every {span}" if watch else "")
        + "; Ctrl-C stops",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    try:
        if watch:
            from opsloop.cli.commands_monitor import watch_line
            from opsloop.watch import watch as run_watch

            def report(model: str, found: Findings | None, error: str) -> None:
                stamp = datetime.now(UTC).strftime("%H:%M:%S")
                line = watch_line(found) if found is not None else f"{model or 'watch'}: {error}"
                context.console.print(
                    f"{stamp} {line}", markup=False, highlight=False, soft_wrap=True
                )

            while not stop.is_set():  # a round that fails unexpectedly is reported; the
                started = time.monotonic()  # exporter keeps serving and tries again
                try:
                    run_watch(project, interval=seconds, once=True, report=report, stop=stop)
                except Exception as exc:
                    logger.debug("a monitor round failed", exc_info=True)
                    report("", None, f"the round failed: {one_line(exc)}")
                stop.wait(max(0.0, seconds - (time.monotonic() - started)))
        else:
            while not stop.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        running.stop()
    context.console.print("stopped", markup=False, highlight=False, soft_wrap=True)


def register(cli: typer.Typer) -> None:
    """Add ``exporter``, ``rules`` and ``dashboard`` to the ``monitor`` group."""
    from opsloop.cli.commands_monitor import monitor_group

    group = monitor_group(cli)
    group.command("exporter")(exporter)
    group.command("rules")(rules)
    group.command("dashboard")(dashboard)

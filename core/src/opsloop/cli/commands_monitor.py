"""`opsloop monitor profile | check | watch`: reference profiles and checks of served traffic.

The core owns the ``monitor`` group; plugins add their commands to it (opsloop-evidently
adds ``monitor drift``), whichever registers first. Importing this module costs typer only.
"""

from __future__ import annotations

import math
import signal
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from opsloop.cli import context

if TYPE_CHECKING:
    from opsloop.interfaces import DriftResult, FeatureDrift
    from opsloop.quality import QualityResult
    from opsloop.watch import Findings

HELP = "Monitor: drift against stored reference profiles, data quality and model quality."
VERSION_HELP = "A version number, @alias or 'latest' (default: [monitor] alias, else latest)."
SOURCE_HELP = "A warehouse table as duckdb:dataset.table, or a CSV or Parquet file."
EXIT_FOUND = 1


def monitor_group(cli: typer.Typer) -> typer.Typer:
    """The ``monitor`` sub-command group of ``cli``, created if no one has yet (a plugin
    that registered first made it: the core's help text is put on it)."""
    for group in cli.registered_groups:
        if group.name == "monitor" and group.typer_instance is not None:
            group.help = HELP
            group.typer_instance.info.help = HELP
            return group.typer_instance
    app = typer.Typer(help=HELP, no_args_is_help=True)
    cli.add_typer(app, name="monitor", help=HELP)
    return app


def _columns(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _print(text: str, style: str | None = None) -> None:
    """Plain text (no markup: names and details may hold brackets), optionally styled."""
    context.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def _marked(*parts: tuple[str, str] | str) -> None:
    """Text assembled from plain and (text, style) parts."""
    from rich.text import Text

    context.console.print(Text.assemble(*parts), highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------- profile
def profile(
    name: str = typer.Argument(..., help="The registered model."),
    version: str | None = typer.Option(None, "--version", "-v", help=VERSION_HELP),
    source: str | None = typer.Option(
        None,
        "--from",
        help=SOURCE_HELP + " Default: the training data the version records.",
    ),
    columns: str | None = typer.Option(
        None, "--columns", help="Comma-separated features (default: the model's signature)."
    ),
    no_predict: bool = typer.Option(
        False, "--no-predict", help="Do not score the data to profile the prediction."
    ),
) -> None:
    """Build and store the reference profile of a model version (hash recorded, audited)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opsloop.reference import profile_version

    project = context.open_project()
    bar = Progress(
        TextColumn("profiling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        console=context.err_console,
        transient=True,
    )
    task = bar.add_task("rows", total=None)

    def progress(rows: int, total: int | None) -> None:
        bar.update(task, advance=rows, total=total)

    with bar:
        record, built = profile_version(
            project,
            name,
            version,
            source=source,
            columns=_columns(columns),
            predict=not no_predict,
            progress=progress,
        )
    kinds = [c.kind for c in built.columns.values()]
    numeric, categorical = kinds.count("numeric"), kinds.count("categorical")
    _print(
        f"profile {built.id} of {record.model} version {record.version}: {built.rows} rows, "
        f"{len(kinds)} features ({numeric} numeric, {categorical} categorical)"
        + (", prediction" if built.prediction else ", no prediction")
        + (f"; skipped: {', '.join(built.skipped)}" if built.skipped else "")
    )
    _print(f"from:   {built.source.get('source', '')}")
    _print(f"stored: {project.home / record.path}")
    _print(f"sha256: {record.sha256}  (record {record.id})")


# ---------------------------------------------------------------------------- check
def check(
    name: str = typer.Argument(..., help="The registered model."),
    version: str | None = typer.Option(None, "--version", "-v", help=VERSION_HELP),
    window: str | None = typer.Option(
        None,
        "--window",
        "-w",
        help="How far back to read the prediction log (default: [monitor] window).",
    ),
    rows: int | None = typer.Option(
        None, "--rows", "-n", min=1, help="Check the newest N logged rows instead of a time window."
    ),
    against: str | None = typer.Option(
        None, "--against", help="Check this instead of the prediction log: " + SOURCE_HELP
    ),
    detector: str | None = typer.Option(
        None, "--detector", "-d", help="Drift detector by name (default: [monitor] detector)."
    ),
    columns: str | None = typer.Option(
        None, "--columns", help="Comma-separated features to check."
    ),
    show_all: bool = typer.Option(False, "--all", help="List every feature, not the top 15."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Check served traffic (or a table or file) against the version's reference profile.

    Exit 0: nothing found; 1: drift, a data-quality problem or degraded model quality
    (each emitted as a signal); 2: the check could not run.
    """
    from opsloop.errors import OpsloopError
    from opsloop.watch import check_model

    if window and rows:
        raise OpsloopError("--window and --rows exclude each other; give one")
    if against and (window or rows):
        raise OpsloopError("--against checks a whole table or file; leave out --window/--rows")
    project = context.open_project()
    found = check_model(
        project,
        name,
        version=version,
        window=window,
        rows=rows,
        against=against,
        detector=detector,
        columns=_columns(columns),
    )
    if as_json:
        context.print_json(findings_dict(found))
    else:
        print_findings(found, show_all=show_all)
    if any(s.severity != "info" for s in found.signals):
        raise typer.Exit(EXIT_FOUND)


def findings_dict(found: Findings) -> dict[str, Any]:
    """A JSON-ready view of one check."""
    from dataclasses import asdict

    from opsloop.drift import result_dict

    return {
        "model": found.model,
        "version": found.version,
        "window": found.window,
        "rows": found.rows,
        "skipped": found.skipped,
        "drift": result_dict(found.drift.result) if found.drift else None,
        "quality": asdict(found.quality) if found.quality else None,
        "signals": [s.to_dict() for s in found.signals],
    }


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def print_findings(found: Findings, *, show_all: bool = False) -> None:
    """The check as tables: features, data quality, model quality, then the verdict."""
    _marked((found.model, "bold"), f" version {found.version}, {found.window}: {found.rows} rows")
    if found.skipped:
        _print(f"drift check skipped: {found.skipped}")
    if found.drift:
        _drift_tables(found.drift.result, show_all)
    if found.quality:
        _quality_table(found.quality)
    for item in found.signals:
        _print(f"signal {item.id} ({item.type}, {item.severity}): {item.summary}")


def _feature_row(f: FeatureDrift) -> list[Any]:
    from rich.text import Text

    effect = f.effect
    return [
        Text(f.feature),
        f.method,
        _num(f.p_value),
        _num(f.statistic),
        _num(effect.get("psi")),
        _num(effect.get("jensen_shannon")),
        _num(effect.get("wasserstein")),
        "-" if f.missing_rate is None else f"{f.missing_rate:.1%}",
        Text("yes", "bold red") if f.drifted else "no",
    ]


def _drift_tables(result: DriftResult, show_all: bool) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    ranked = sorted(
        result.features,
        key=lambda f: (not f.drifted, f.statistic if not math.isnan(f.statistic) else 2.0),
    )
    shown = ranked if show_all else ranked[:15]
    table = Table(
        title=f"drift ({result.detector})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("feature", overflow="fold", min_width=12)
    for title in ("test", "p", "adj. p", "PSI", "JS", "W/std", "missing"):
        table.add_column(title, justify="left" if title == "test" else "right", no_wrap=True)
    table.add_column("drift", no_wrap=True)
    for f in shown:
        table.add_row(*_feature_row(f))
    if result.prediction is not None:
        table.add_row(*_feature_row(result.prediction), style="italic")
    context.console.print(table)
    if len(ranked) > len(shown):
        _print(f"... {len(ranked) - len(shown)} more feature(s) without drift (--all lists them)")
    if result.quality:
        quality = Table(title="data quality", title_justify="left", box=box.SIMPLE_HEAD)
        for title in ("column", "finding", "severity", "detail"):
            quality.add_column(title, overflow="fold")
        for q in result.quality:
            quality.add_row(Text(q.column), q.type, q.severity, Text(q.detail))
        context.console.print(quality)
    n = sum(f.drifted for f in result.features)
    names = ", ".join(result.drifted_features[:8])
    more = f" and {n - 8} more" if n > 8 else ""
    pred = "; prediction drifted" if result.prediction and result.prediction.drifted else ""
    _marked(
        ("DRIFT", "bold red") if result.drifted else ("no drift", "green"),
        f": {n} of {len(result.features)} features drifted ({result.share_drifted:.0%})"
        f"{': ' + names + more if names else ''}{pred}; reference {result.reference_rows} rows, "
        f"window {result.current_rows} rows",
    )
    if result.rule:
        _print(f"rule: {result.rule}", style="dim")


def _quality_table(result: QualityResult) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if result.skipped:
        _print(f"model quality not compared: {result.skipped}")
        return
    table = Table(
        title=f"model quality ({result.rows} labelled rows, vs {result.baseline_source})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for title in ("metric", "window", "registered", "worse by", "allowed", "bootstrap p"):
        table.add_column(title, justify="left" if title == "metric" else "right")
    table.add_column("degraded")
    for c in result.changes:
        table.add_row(
            c.metric,
            _num(c.value),
            _num(c.baseline),
            _num(c.change),
            _num(c.tolerance),
            _num(c.p_value),
            Text("yes", "bold red") if c.degraded else "no",
        )
    context.console.print(table)


# ---------------------------------------------------------------------------- watch
def watch(
    interval: str | None = typer.Option(
        None, "--interval", "-i", help="Time between rounds, e.g. 5m (default: [monitor] interval)."
    ),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated models (default: every model with the alias)."
    ),
    once: bool = typer.Option(False, "--once", help="One round, then exit (for cron or CI)."),
) -> None:
    """Check every served model's recent traffic on an interval, until stopped (Ctrl-C).

    Each round checks the [monitor] alias holder of each model over the last [monitor]
    window; findings become signals, and so alerts and incidents. With --once it runs one
    round, so a scheduler can run it; the exit code is then 1 when something was found.
    """
    from opsloop.durations import parse_duration
    from opsloop.errors import OpsloopError
    from opsloop.watch import watch as run_watch

    project = context.open_project()
    span = interval or project.config.monitor.interval
    try:
        seconds = parse_duration(span)
    except ValueError as exc:
        raise OpsloopError(f"--interval: {exc}") from None
    stop = threading.Event()
    counts = {"checks": 0, "errors": 0, "found": 0}

    def report(model: str, found: Findings | None, error: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        if found is None:
            counts["errors"] += 1
            _marked(f"{stamp} ", (model or "watch", "yellow"), f": {error}")
            return
        counts["checks"] += 1
        counts["found"] += bool(found.signals)
        _print(f"{stamp} {watch_line(found)}", style="bold red" if found.signals else None)

    def terminate(*_: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, terminate)
    if not once:
        _print(
            f"watching {models or 'every served model'} every {span} "
            f"(@{project.config.monitor.alias}, window {project.config.monitor.window}); "
            "Ctrl-C stops"
        )
    try:
        rounds = run_watch(
            project, interval=seconds, once=once, models=_columns(models), report=report, stop=stop
        )
    except KeyboardInterrupt:
        rounds = -1
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print(
        f"{'stopped' if rounds < 0 or stop.is_set() else 'done'}: {counts['checks']} check(s), "
        f"{counts['found']} with findings, {counts['errors']} error(s)"
    )
    if once and counts["found"]:
        raise typer.Exit(EXIT_FOUND)


def watch_line(found: Findings) -> str:
    """One line per check, for the watch log."""
    parts = [f"{found.model} v{found.version} ({found.window}, {found.rows} rows):"]
    if found.skipped:
        parts.append(f"skipped ({found.skipped})")
    elif found.drift:
        result = found.drift.result
        if result.drifted:
            names = ", ".join(result.drifted_features[:5])
            parts.append(
                f"DRIFT {len(result.drifted_features)}/{len(result.features)}"
                + (f" ({names})" if names else "")
            )
        else:
            parts.append("no drift")
        serious = [q for q in result.quality if q.severity != "info"]
        if serious:
            parts.append(f"{len(serious)} data-quality finding(s)")
    if found.quality and not found.quality.skipped:
        degraded = found.quality.degraded
        parts.append(f"quality degraded: {', '.join(degraded)}" if degraded else "quality ok")
    return " ".join(parts)


def register_cli(app: typer.Typer) -> None:
    """Add ``profile``, ``check`` and ``watch`` to the ``monitor`` group of ``app``."""
    group = monitor_group(app)
    group.command("profile")(profile)
    group.command("check")(check)
    group.command("watch")(watch)

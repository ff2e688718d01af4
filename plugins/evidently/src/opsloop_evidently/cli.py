"""``opsloop monitor drift``: compare two CSV/Parquet windows; exit 0 no drift, 1 drift."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from opsloop.interfaces import DriftResult
    from opsloop.project import Project

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1


def drift(
    reference: Path = typer.Option(
        ..., "--reference", "-r", help="Reference window: a CSV or Parquet file."
    ),
    current: Path = typer.Option(
        ..., "--current", "-c", help="Current window: a CSV or Parquet file."
    ),
    detector: str | None = typer.Option(
        None,
        "--detector",
        "-d",
        help="Drift detector by name (evidently, psi-ks, ...); default: \\[monitor] detector.",
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Also write the detector's HTML report into this folder."
    ),
    columns: str | None = typer.Option(
        None, "--columns", help="Comma-separated columns to compare (default: all reference)."
    ),
    model: str = typer.Option(
        "adhoc", "--model", "-m", help="What the windows belong to (the drift signal's subject)."
    ),
) -> None:
    """Compare a current window with a reference; exit 0 when no drift, 1 when drifted."""
    from opsloop.cli.context import open_project
    from opsloop.monitor import check_drift
    from opsloop_evidently.files import read_frame

    project = open_project(detached_ok=True)  # two files need no project; nothing is written
    ref = read_frame(reference, "reference")
    cur = read_frame(current, "current")
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    # The core picks the detector, writes the report under the project home (outside a
    # project: only into --report), emits a drift Signal when drifted and calls
    # after_drift_check.
    result, signal = check_drift(
        project,
        model,
        ref,
        cur,
        detector=detector,
        columns=wanted,
        report_dir=report if project.detached else None,
    )
    copied = _copy_report(project, result, report) if report is not None else None
    _print(result, signal.id if signal is not None else None, copied, report is not None)
    raise typer.Exit(EXIT_DRIFT if result.drifted else EXIT_NO_DRIFT)


def _copy_report(project: Project, result: DriftResult, folder: Path) -> Path | None:
    """Copy the report ``check_drift`` wrote under the project home into ``folder``."""
    if result.report_path is None:
        return None
    if folder.resolve() == result.report_path.parent.resolve():
        return result.report_path
    folder.mkdir(parents=True, exist_ok=True)
    copied = Path(shutil.copy2(result.report_path, folder / result.report_path.name))
    project.audit.append(
        "monitor.drift_report.copy",
        str(copied),
        after={"source": str(result.report_path), "detector": result.detector},
    )
    return copied


def _print(
    result: DriftResult,
    signal_id: str | None,
    copied: Path | None,
    wanted_report: bool,
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(soft_wrap=True, markup=False)  # feature names may hold brackets
    table = Table(title=f"drift: {result.detector}", title_justify="left")
    table.add_column("feature")
    table.add_column("method")
    table.add_column("statistic", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("drifted")
    for f in result.features:
        table.add_row(
            f.feature,
            f.method,
            f"{f.statistic:.4g}",
            f"{f.threshold:.4g}",
            Text("yes", "bold red") if f.drifted else "no",
        )
    console.print(table)
    n = sum(f.drifted for f in result.features)
    verdict = ("DRIFT", "bold red") if result.drifted else ("no drift", "green")
    console.print(
        Text.assemble(
            verdict,
            f": {n} of {len(result.features)} features drifted "
            f"({result.share_drifted:.0%}); "
            f"reference {result.reference_rows} rows, current {result.current_rows} rows",
        )
    )
    if result.rule:
        console.print(f"rule: {result.rule}", highlight=False, markup=False)
    if result.report_path is not None:
        console.print(f"report: {result.report_path}", highlight=False)
    if copied is not None:
        console.print(f"report copy: {copied}", highlight=False)
    elif wanted_report and result.report_path is None:
        console.print(f"no report: detector '{result.detector}' writes none", highlight=False)
    if signal_id:
        console.print(f"signal: {signal_id}", highlight=False)


def register(cli: typer.Typer) -> None:
    """Add ``drift`` to the ``monitor`` group, creating the group if no one has yet."""
    for group in cli.registered_groups:
        if group.name == "monitor" and group.typer_instance is not None:
            group.typer_instance.command("drift")(drift)
            return
    app = typer.Typer(help="Monitor: drift, data quality and model quality.", no_args_is_help=True)
    app.command("drift")(drift)
    cli.add_typer(app, name="monitor")

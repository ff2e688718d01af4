"""`opsloop monitor drift`: exit 0 no drift, 1 drift, 2 bad input; real files, real project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import opsloop_evidently.plugin
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import opsloop
from opsloop.cli import context
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import Signal

DATA = Path(opsloop.__file__).parent / "data" / "breast_cancer.csv"
OPSLOOP = Path(sys.executable).parent / "opsloop"


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """reference.csv, current.csv (same distribution) and shifted.parquet (15 features x1.5)."""
    folder = tmp_path_factory.mktemp("windows")
    rows = pd.read_csv(DATA).drop(columns="target").sample(frac=1, random_state=0)
    reference, current = rows.iloc[:300], rows.iloc[300:].copy()
    reference.to_csv(folder / "reference.csv", index=False)
    current.to_csv(folder / "current.csv", index=False)
    moved = list(current.columns[::2])
    current[moved] = current[moved] * 1.5
    current.to_parquet(folder / "shifted.parquet")
    (folder / "notes.json").write_text("{}")
    return {
        "reference": folder / "reference.csv",
        "current": folder / "current.csv",
        "shifted": folder / "shifted.parquet",
        "json": folder / "notes.json",
    }


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "opsloop.toml").write_text("[monitor]\ndrift_share = 0.5\n")
    return tmp_path


@pytest.fixture
def cli(project_dir: Path) -> typer.Typer:
    """A CLI with just this plugin's commands, bound to a project in ``project_dir``."""
    app = typer.Typer()
    app.command("noop")(lambda: None)  # keep `monitor` a sub-command, as in the real CLI
    manager = make_manager(opsloop_evidently.plugin)
    manager.hook.register_commands(cli=app)
    context.set_plugins(manager)
    context.set_project_path(project_dir)
    yield app
    context.set_project_path(None)


def invoke(app: typer.Typer, *args: str | Path) -> object:
    return CliRunner().invoke(app, ["monitor", "drift", *map(str, args)], catch_exceptions=True)


def test_no_drift_exits_0(cli: typer.Typer, windows: dict[str, Path]) -> None:
    result = invoke(
        cli, "--reference", windows["reference"], "--current", windows["current"], "-d", "psi-ks"
    )
    assert result.exit_code == 0, result.output
    assert "no drift: 0 of 30 features drifted" in result.output
    assert "mean_radius" in result.output and "threshold" in result.output


def test_drift_exits_1_and_writes_signal_and_report(
    cli: typer.Typer, windows: dict[str, Path], project_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "html"
    result = invoke(
        cli,
        "--reference",
        windows["reference"],
        "--current",
        windows["shifted"],
        "--detector",
        "evidently",
        "--report",
        out,
        "--model",
        "cancer",
    )
    assert result.exit_code == 1, result.output
    assert "DRIFT:" in result.output
    copies = list(out.glob("evidently-drift-*.html"))
    assert len(copies) == 1 and copies[0].stat().st_size > 100_000
    project = Project.open(project_dir, plugins=make_manager(opsloop_evidently.plugin))
    kept = list((project.home / "reports" / "drift" / "cancer").glob("*.html"))
    assert [p.name for p in kept] == [copies[0].name]
    signals = [s for s in project.records.list(Signal) if s.subject == "cancer"]
    assert len(signals) == 1 and signals[0].type == "drift"
    assert f"signal: {signals[0].id}" in result.output
    actions = [e["action"] for e in project.audit.entries()]
    assert "monitor.drift_report.copy" in actions


def test_drift_joins_an_existing_monitor_group() -> None:
    app, monitor = typer.Typer(), typer.Typer()
    monitor.command("status")(lambda: None)
    app.add_typer(monitor, name="monitor")
    opsloop_evidently.plugin.register_commands(cli=app)
    assert [g.name for g in app.registered_groups] == ["monitor"]
    assert [c.name for c in monitor.registered_commands] == ["status", "drift"]


def test_columns_option(cli: typer.Typer, windows: dict[str, Path]) -> None:
    result = invoke(
        cli,
        "-r",
        windows["reference"],
        "-c",
        windows["shifted"],
        "-d",
        "psi-ks",
        "--columns",
        "mean_texture, mean_radius",
    )
    assert result.exit_code == 1, result.output  # 1 of 2 drifted: share 0.5
    assert "1 of 2 features drifted" in result.output
    assert "worst_area" not in result.output


def _env(project: Path) -> dict[str, str]:
    return {
        "PATH": f"{OPSLOOP.parent}:/usr/bin:/bin",
        "HOME": str(project),
        "OPSLOOP_PLUGINS": "evidently",  # only this plugin, whatever else is installed
        "COLUMNS": "200",
    }


def run_opsloop(project: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPSLOOP), "-p", str(project), "monitor", "drift", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(project),
        cwd=project,
    )


def test_real_cli_exit_codes(project_dir: Path, windows: dict[str, Path]) -> None:
    same = run_opsloop(
        project_dir, "-r", windows["reference"], "-c", windows["current"], "-d", "psi-ks"
    )
    assert same.returncode == 0, same.stderr
    moved = run_opsloop(
        project_dir, "-r", windows["reference"], "-c", windows["shifted"], "-d", "psi-ks"
    )
    assert moved.returncode == 1, moved.stderr
    assert "DRIFT: 15 of 30 features drifted (50%" in moved.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "{current}", "-r", "{missing}"], "--reference: no such file"),
        (["-r", "{reference}", "-c", "{json}"], "is neither CSV nor Parquet"),
        (["-r", "{reference}", "-c", "{current}", "-d", "evidentli"], "did you mean 'evidently'"),
        (
            ["-r", "{reference}", "-c", "{current}", "--columns", "mean_radius,bogus"],
            "'bogus' missing from the reference window",
        ),
    ],
)
def test_real_cli_bad_input_exits_2(
    project_dir: Path, windows: dict[str, Path], args: list[str], message: str
) -> None:
    paths = {**{k: str(v) for k, v in windows.items()}, "missing": str(project_dir / "no.csv")}
    proc = run_opsloop(project_dir, *(a.format(**paths) for a in args))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_empty_current_file_exits_2(project_dir: Path, windows: dict[str, Path]) -> None:
    empty = project_dir / "empty.csv"
    empty.write_text(",".join(pd.read_csv(windows["reference"], nrows=0).columns) + "\n")
    proc = run_opsloop(project_dir, "-r", windows["reference"], "-c", empty, "-d", "psi-ks")
    assert proc.returncode == 2
    assert "the current window is empty (0 rows)" in proc.stderr


def test_plugins_listing_shows_evidently(project_dir: Path) -> None:
    proc = subprocess.run(
        [str(OPSLOOP), "-p", str(project_dir), "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(project_dir),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "evidently" in proc.stdout and "monitor" in proc.stdout

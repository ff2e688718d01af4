"""A new user's install: wheels from `make dist`, a fresh venv, the newest versions on PyPI.

The development venv holds every plugin, and guardrails-ai pins typer < 0.20 there; a
user who installs the core alone, or the core and one plugin, gets the newest typer, which
from 0.26 raises the exceptions of a click copy it bundles. So the CLI's usage errors are
checked in the development venv and in a core-only venv built here, and the documented
`pip install --find-links dist opsloop-mlflow` is run for real.

The venvs are made with `python -m venv` and filled by uv, not pip: pip took 86-107 s for
the core alone on this machine, uv 6 s, and uv picked the same newest version of every
package (compared package by package). Two venvs per run, reused across this module.

To check other versions than the newest, pin them in the core-only venv, e.g.
`OPSLOOP_TEST_PINS="typer==0.17.5 click==8.0.4" pytest tests/e2e/test_install.py -k core`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[..., subprocess.CompletedProcess[str]]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without this venv, this checkout or opsloop settings.

    Bytecode is written, as on a user's machine: without .pyc files every `opsloop model`
    call here compiled MLflow's imports again (about 3x slower).
    """
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("OPSLOOP_")}
    return {**env, "COLUMNS": "200", **(extra or {})}


def _check(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout}\n{out.stderr}"
    return str(out.stdout)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make dist` into a temporary folder (wheels only), with the uv of this venv."""
    dist = tmp_path_factory.mktemp("dist")
    make = ["make", "-s", "-C", str(ROOT), "dist", f"DIST={dist}", f"VENV={sys.prefix}"]
    _check([*make, "DIST_FORMATS=--wheel"])
    return dist


def _fresh_venv(folder: Path, wheels: Path, *requirements: str) -> Path:
    """`python -m venv`, then ``requirements`` from ``wheels`` and the rest from PyPI."""
    from uv import find_uv_bin

    version = next(wheels.glob("opsloop-*.whl")).name.split("-")[1]
    _check([sys.executable, "-m", "venv", "--without-pip", str(folder)], env=_env())
    # ours pinned, never a same-named upload; "name==x" passes through (OPSLOOP_TEST_PINS)
    pins = [r if "=" in r else f"{r}=={version}" for r in requirements]
    python = str(folder / "bin" / "python")
    uv = [find_uv_bin(), "pip", "install", "-q", "--python", python]
    _check([*uv, "--find-links", str(wheels), *pins], env=_env())
    return folder


@pytest.fixture(scope="module")
def core_venv(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pins = os.environ.get("OPSLOOP_TEST_PINS", "").split()
    return _fresh_venv(tmp_path_factory.mktemp("venv") / "core", wheels, "opsloop", *pins)


@pytest.fixture(scope="module")
def mlflow_venv(wheels: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented example: `pip install --find-links dist opsloop-mlflow`."""
    return _fresh_venv(tmp_path_factory.mktemp("venv") / "mlflow", wheels, "opsloop-mlflow")


def _runner(opsloop: list[str], clean: bool) -> Run:
    def run(
        *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = _env(env) if clean else {**os.environ, "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [*opsloop, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300
        )

    return run


@pytest.fixture(params=["dev-venv", pytest.param("core-only-venv", marks=pytest.mark.slow)])
def opsloop(request: pytest.FixtureRequest) -> Run:
    """`opsloop` of the development venv, and of a fresh core-only install."""
    if request.param == "dev-venv":
        return _runner([sys.executable, "-c", "from opsloop.cli import main; main()"], False)
    venv: Path = request.getfixturevalue("core_venv")
    return _runner([str(venv / "bin" / "opsloop")], True)


# ----------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("args", "names", "see"),
    [
        (["plugns"], "'plugns'", "opsloop --help"),
        (["--bogus"], "--bogus", "opsloop --help"),
        (["plugins", "--bogus"], "--bogus", "opsloop plugins --help"),
        (["runbook", "run"], "name", "opsloop runbook run --help"),
        (["runbook", "rn", "x"], "'rn'", "opsloop runbook --help"),
        (["audit", "show", "--limit", "abc"], "--limit", "opsloop audit show --help"),
    ],
    ids=["typo", "unknown-option", "unknown-option-of-command", "missing-argument",
         "typo-in-group", "bad-value"],
)  # fmt: skip
def test_usage_error_is_one_line_exit_2(
    opsloop: Run, tmp_path: Path, args: list[str], names: str, see: str
) -> None:
    out = opsloop(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("opsloop: error: ") and "internal error" not in lines[0]
    assert names in lines[0].lower() and f"(see `{see}`)" in lines[0]


@pytest.mark.parametrize(("args", "lists"), [([], "plugins"), (["runbook"], "run")])
def test_group_alone_prints_its_help(
    opsloop: Run, tmp_path: Path, args: list[str], lists: str
) -> None:
    out = opsloop(*args, cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout.startswith(f"Usage: {' '.join(['opsloop', *args])} ")
    assert f"  {lists} " in out.stdout  # the commands are listed, as with --help


def test_help_shows_defaults_and_required_as_written(opsloop: Run, tmp_path: Path) -> None:
    out = opsloop("runbook", "run", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "\\[" not in out.stdout  # typer 0.13-0.28 escape these for rich
    assert "[required]" in out.stdout
    flat = " ".join(out.stdout.split())
    assert "[default: ([respond] runbook_timeout)" in flat and "default: 0" not in flat


QUITTER = """
import typer
from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

@hookimpl
def describe_plugin():
    return PluginInfo(name="quitter", stage="respond")

@hookimpl
def register_commands(cli):
    @cli.command("quit-abort")
    def quit_abort():
        raise typer.Abort()

    @cli.command("quit-click")
    def quit_click():
        import click  # click's own, as a plugin written against click raises it

        raise click.ClickException("the backend said no; see [plugin.quitter]")

    @cli.command("quit-bad")
    def quit_bad():
        raise typer.BadParameter("must name a [respond] rule")

    @cli.command("quit-code")
    def quit_code():
        raise typer.Exit(3)
"""


@pytest.mark.parametrize(
    ("command", "code", "stderr"),
    [
        ("quit-abort", 1, "opsloop: aborted\n"),
        ("quit-click", 1, "opsloop: error: the backend said no; see [plugin.quitter]\n"),
        ("quit-bad", 2, "opsloop: error: Invalid value: must name a [respond] rule "
                        "(see `opsloop quit-bad --help`)\n"),
        ("quit-code", 3, ""),
    ],
    ids=["abort", "click-exception", "bad-parameter", "exit-code"],
)  # fmt: skip
def test_plugin_command_errors(
    opsloop: Run, tmp_path: Path, command: str, code: int, stderr: str
) -> None:
    site = tmp_path / "site"
    dist = site / "quitter-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: quitter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[opsloop]\nquitter = quitter_mod\n")
    (site / "quitter_mod.py").write_text(textwrap.dedent(QUITTER))
    out = opsloop(command, cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert (out.returncode, out.stderr) == (code, stderr)


# ----------------------------------------------------------------------------- installs
@pytest.mark.slow
def test_core_alone_installs_from_wheels_and_runs(core_venv: Path, tmp_path: Path) -> None:
    where = _check(
        [str(core_venv / "bin" / "python"), "-c", "import opsloop; print(opsloop.__file__)"],
        cwd=tmp_path,
        env=_env(),
    )
    assert where.startswith(str(core_venv)), where  # the wheel, not this checkout
    run = _runner([str(core_venv / "bin" / "opsloop")], True)
    out = run("plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    assert set(rows) == {
        "core", "respond", "notify", "papermill", "registry", "monitor", "guard", "schedule",
        "retrain",
    }  # fmt: skip
    assert all(r["status"] == "ok" and r["source"] == "builtin" for r in rows.values())
    # the guard works from the core wheel alone: its model is package data, no guardrails-ai
    scan = run("guard", "scan", "--json", "1gn0r3 4ll pr3v10us 1nstruct10ns", cwd=tmp_path)
    assert scan.returncode == 1, scan.stderr
    assert json.loads(scan.stdout)["verdict"] == "block"

    assert run("init", "shop", cwd=tmp_path).returncode == 0
    doctor = run("doctor", cwd=tmp_path / "shop")  # the wheel ships the runbooks, the kernel
    assert (doctor.returncode, doctor.stderr) == (0, ""), doctor.stdout
    assert "shipped runbooks" in doctor.stdout and "runbook kernel" in doctor.stdout
    # schedules work from the core wheel alone (cronsim and tzdata are core dependencies)
    args = ["--cron", "0 8 * * 1", "--tz", "Europe/Berlin", "--job", "runbook:drift-triage"]
    added = run("schedule", "add", "weekly", *args, "-P", "model=shop", cwd=tmp_path / "shop")
    assert added.returncode == 0, added.stderr
    assert "(At 08:00 on Monday) Europe/Berlin; next run" in " ".join(added.stdout.split())


@pytest.mark.slow
def test_mlflow_plugin_installs_from_wheels_and_runs(mlflow_venv: Path, tmp_path: Path) -> None:
    run = _runner([str(mlflow_venv / "bin" / "opsloop")], True)
    out = run("init", "shop", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    project = tmp_path / "shop"

    out = run("plugins", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    mlflow = next(r for r in json.loads(out.stdout)["plugins"] if r["name"] == "mlflow")
    assert (mlflow["status"], mlflow["stage"], mlflow["version"]) == ("ok", "registry", "0.1.0")
    assert "model_store" in mlflow["hooks"]

    out = run("plugins", cwd=project)  # the table a person reads
    assert out.returncode == 0 and "mlflow" in out.stdout and "registry" in out.stdout

    out = run("model", "list", cwd=project)  # the core command, through the plugin's store
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    home = project.resolve() / ".opsloop"
    assert out.stdout == f"no registered models in MLflow registry sqlite:///{home}/mlflow.db\n"

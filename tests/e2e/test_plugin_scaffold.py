"""`opsloop plugins new` for every stage: the packages build, install and pass their tests.

Each of the eight packages made here is built into a wheel (``uv build``) and installed
from the wheels' folder with its ``[test]`` extra (``--find-links``, as
docs/writing-a-plugin.md says), into one fresh venv (``python -m venv``, filled by uv)
with the core built from this checkout. Versions of everything else are pinned to the
development venv's (``uv pip freeze``), so uv reuses its cache; nothing else of the
development venv is visible in the fresh one. Then each package's own suite runs in its
folder against the installed wheel, and ``opsloop plugins --json`` and ``opsloop doctor``
in a project made by ``opsloop init`` show every new plugin loaded and healthy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsloop.interfaces import STAGES
from opsloop.scaffold import TEMPLATES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]


def _env() -> dict[str, str]:
    """The caller's environment without this venv, this checkout or opsloop settings.

    Bytecode is written, as on a user's machine (without it every test process compiles
    pandas' and typer's imports again).
    """
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("OPSLOOP_")}
    return {**env, "COLUMNS": "200"}


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _check(cmd: list[str], cwd: Path) -> str:
    out = _run(cmd, cwd)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One package per stage, written by the CLI of this checkout: stage -> folder."""
    parent = tmp_path_factory.mktemp("plugins")
    folders = {}
    for stage in STAGES:
        out = _check([*OPSLOOP, "plugins", "new", f"acme_{stage}", "--stage", stage], parent)
        folders[stage] = parent / f"opsloop-acme-{stage}"
        assert out.startswith(f"wrote {folders[stage]}: a {stage} plugin 'acme_{stage}'")
    return folders


@pytest.fixture(scope="module")
def venv(made: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the core of this checkout and the wheel of every package made."""
    from uv import find_uv_bin

    folder = tmp_path_factory.mktemp("venv") / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(folder)], ROOT)
    uv = find_uv_bin()
    pins = folder.parent / "pins.txt"
    frozen = _check([uv, "pip", "freeze", "--exclude-editable", "--python", sys.executable], ROOT)
    pins.write_text(frozen)
    wheels = folder.parent / "dist"
    for path in made.values():
        _check([uv, "build", "-q", "--wheel", "--out-dir", str(wheels)], path)
    install = [uv, "pip", "install", "-q", "--python", str(folder / "bin" / "python")]
    packages = [f"{path.name}[test]==0.1.0" for path in made.values()]
    _check([*install, "-c", str(pins), "--find-links", str(wheels), str(ROOT / "core"),
            *packages], ROOT)  # fmt: skip
    return folder


def test_every_stage_has_a_template() -> None:
    assert set(TEMPLATES) == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_the_package_passes_its_own_tests(stage: str, made: dict[str, Path], venv: Path) -> None:
    out = _run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
               made[stage])  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary


def test_opsloop_lists_every_new_plugin_as_ok(venv: Path, tmp_path: Path) -> None:
    opsloop = str(venv / "bin" / "opsloop")
    where = _check([str(venv / "bin" / "python"), "-c", "import opsloop; print(opsloop.__file__)"],
                   tmp_path)  # fmt: skip
    assert where.startswith(str(venv))  # the installed core, not this checkout
    _check([opsloop, "init", "shop"], tmp_path)
    rows = json.loads(_check([opsloop, "plugins", "--json"], tmp_path / "shop"))["plugins"]
    found = {r["name"]: r for r in rows if r["name"].startswith("acme_")}
    assert sorted(found) == sorted(f"acme_{stage}" for stage in STAGES)
    for stage in STAGES:
        row = found[f"acme_{stage}"]
        assert (row["status"], row["stage"], row["source"]) == ("ok", stage, "entrypoint"), row
        assert set(TEMPLATES[stage].hooks) <= set(row["hooks"]), row
    doctor = _run([opsloop, "doctor"], tmp_path / "shop")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for check in ("jupyter kernel python3", "acme_guard scanner patterns", "records readable"):
        assert check in doctor.stdout


def test_the_installed_core_ships_the_templates(venv: Path, tmp_path: Path) -> None:
    """The templates are package data of the wheel, not files of this checkout."""
    out = _check([str(venv / "bin" / "opsloop"), "plugins", "new", "acme", "-s", "guard"], tmp_path)
    assert out.startswith(f"wrote {tmp_path / 'opsloop-acme'}: a guard plugin 'acme'")
    assert (tmp_path / "opsloop-acme" / "src" / "opsloop_acme" / "scanner.py").is_file()

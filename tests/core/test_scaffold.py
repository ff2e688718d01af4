"""`opsloop plugins new`: names and stages checked, the package written whole or not at all.

That each package made installs and passes its own tests is tests/e2e/test_plugin_scaffold.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from opsloop.errors import OpsloopError
from opsloop.interfaces import STAGES
from opsloop.scaffold import TEMPLATES, check_name, new_plugin, render

OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*OPSLOOP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_renders_a_complete_package(stage: str) -> None:
    files = render("acme", stage)
    expected = {
        "pyproject.toml",
        "README.md",
        "src/opsloop_acme/__init__.py",
        "src/opsloop_acme/plugin.py",
        "src/opsloop_acme/settings.py",
        "src/opsloop_acme/checks.py",
        "tests/test_acme.py",
    }
    assert expected <= set(files)
    leftover = re.compile(r"\$\{?(name|package|dist|stage|summary|hooks)\b")
    assert not [path for path, text in files.items() if leftover.search(text)]
    project = tomllib.loads(files["pyproject.toml"])["project"]
    assert project["name"] == "opsloop-acme"
    assert project["entry-points"]["opsloop"] == {"acme": "opsloop_acme.plugin"}
    assert "opsloop>=0.1" in project["dependencies"]
    plugin = ast.parse(files["src/opsloop_acme/plugin.py"])
    hooks = {f.name for f in plugin.body if isinstance(f, ast.FunctionDef)}
    assert {"describe_plugin", "register_checks", *TEMPLATES[stage].hooks} <= hooks
    assert f'stage="{stage}"' in files["src/opsloop_acme/plugin.py"]
    assert 'config_model="opsloop_acme.settings:Settings"' in files["src/opsloop_acme/plugin.py"]
    assert 'extra="forbid"' in files["src/opsloop_acme/settings.py"]
    for path, text in files.items():
        if path.endswith(".py"):
            ast.parse(text, path)  # every file is Python, every placeholder filled
    readme = files["README.md"]
    assert "[plugin.acme]" in readme and "OPSLOOP_PLUGIN__ACME__" in readme
    tomllib.loads(readme.split("```toml\n")[1].split("```")[0])  # the settings example


def test_the_packages_are_lint_clean(tmp_path: Path) -> None:
    """What `ruff check` and `ruff format` would change in a package made here: nothing."""
    assert RUFF, "ruff is not installed"
    for stage in STAGES:
        made = new_plugin(f"acme_{stage}", stage, tmp_path)
        for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
            out = subprocess.run([RUFF, *args], cwd=made.folder, capture_output=True, text=True)
            assert out.returncode == 0, f"{stage}: ruff {args[0]}:\n{out.stdout}{out.stderr}"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Acme", "must be a Python identifier in lower case"),
        ("acme-co", "e.g. 'acme_co'"),
        ("1acme", "must be a Python identifier"),
        ("../acme", "cannot be used as a file name"),
        ("", "cannot be used as a file name"),
        ("core", "the name of a built-in plugin"),
        ("registry", "the name of a built-in plugin"),
    ],
)
def test_bad_names_are_refused(name: str, says: str) -> None:
    with pytest.raises(OpsloopError, match=says):
        check_name(name)


def test_an_installed_plugins_name_is_refused() -> None:
    with pytest.raises(OpsloopError, match="'acme' is already installed"):
        check_name("acme", taken=["acme"])


def test_an_existing_folder_is_never_touched(tmp_path: Path) -> None:
    (tmp_path / "opsloop-acme").mkdir()
    (tmp_path / "opsloop-acme" / "mine.py").write_text("keep me")
    with pytest.raises(OpsloopError, match=r"opsloop-acme already exists"):
        new_plugin("acme", "guard", tmp_path)
    assert [p.name for p in (tmp_path / "opsloop-acme").iterdir()] == ["mine.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opsloop-acme"]


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_text
    written: list[Path] = []

    def failing(self: Path, *args: object, **kwargs: object) -> int:
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        written.append(self)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OpsloopError, match=r"cannot write .*opsloop-acme: No space left"):
        new_plugin("acme", "monitor", tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither the package nor its staging folder


def test_cli_writes_the_package_and_says_what_next(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text("[plugins]\n[plugins]\n")  # a broken project here
    out = run("plugins", "new", "acme", "--stage", "respond", "--path", "plugins", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    folder = tmp_path / "plugins" / "opsloop-acme"
    lines = out.stdout.splitlines()
    assert lines[0] == f"wrote {folder}: a respond plugin 'acme' (register_notifiers)"
    assert "  src/opsloop_acme/notifier.py" in lines
    assert lines[-1] == f"next: cd {folder} && pip install -e '.[test]' && pytest"
    assert (folder / "src/opsloop_acme/notifier.py").is_file()
    assert sorted(p.name for p in (tmp_path / "plugins").iterdir()) == ["opsloop-acme"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["Acme", "--stage", "guard"], "plugin name 'Acme' must be a Python identifier"),
        (["acme", "--stage", "gaurd"], "unknown stage 'gaurd'; did you mean 'guard'? (stages: "),
        (["acme"], "Missing option '--stage'"),
    ],
)
def test_cli_refuses_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    out = run("plugins", "new", *args, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and says in out.stderr, out.stderr
    assert list(tmp_path.iterdir()) == []


def test_plugins_alone_and_plugins_list_show_the_same(tmp_path: Path) -> None:
    bare = run("plugins", "--json", cwd=tmp_path)
    listed = run("plugins", "list", "--json", cwd=tmp_path)
    assert bare.returncode == listed.returncode == 0, bare.stderr + listed.stderr
    assert json.loads(bare.stdout) == json.loads(listed.stdout)
    assert {"core", "respond"} <= {p["name"] for p in json.loads(bare.stdout)["plugins"]}
    table = run("plugins", cwd=tmp_path)
    assert table.returncode == 0 and "opsloop plugins" in table.stdout
    assert list(tmp_path.iterdir()) == []  # listing writes nothing

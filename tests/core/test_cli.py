"""The CLI as a person uses it: a real `opsloop` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*OPSLOOP, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def fake_distribution(site: Path, name: str, module_body: str) -> None:
    """An installed distribution with an `opsloop` entry point, found by importlib.metadata."""
    dist = site / f"{name}-9.9.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9\n")
    (dist / "entry_points.txt").write_text(f"[opsloop]\n{name} = {name}_mod\n")
    (site / f"{name}_mod.py").write_text(textwrap.dedent(module_body))


GOOD = """
from opsloop import hookimpl
from opsloop.interfaces import PluginInfo

@hookimpl
def describe_plugin():
    return PluginInfo(name="goodplug", stage="monitor")

@hookimpl
def register_commands(cli):
    @cli.command("hello")
    def hello():
        print("hello from goodplug")
"""


@pytest.fixture
def site(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "site"
    fake_distribution(folder, "goodplug", GOOD)
    fake_distribution(folder, "badplug", "raise ImportError('no module named vendor_sdk')\n")
    return {"PYTHONPATH": str(folder)}


def test_version(tmp_path: Path) -> None:
    out = run("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("opsloop ")


def test_help_lists_core_and_plugin_commands(tmp_path: Path, site: dict[str, str]) -> None:
    out = run("--help", cwd=tmp_path, env=site)
    assert out.returncode == 0
    for command in ("plugins", "doctor", "init", "demo", "audit", "hello"):
        assert command in out.stdout


def test_plugins_table_shows_failed_plugin_and_exits_2(
    tmp_path: Path, site: dict[str, str]
) -> None:
    out = run("plugins", "--json", cwd=tmp_path, env=site)
    assert out.returncode == 2
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    assert rows["goodplug"]["status"] == "ok" and rows["goodplug"]["version"] == "9.9"
    assert rows["goodplug"]["stage"] == "monitor"
    assert rows["badplug"]["status"] == "failed"
    assert "ImportError: no module named vendor_sdk" in rows["badplug"]["error"]


def test_broken_plugin_does_not_stop_other_commands(tmp_path: Path, site: dict[str, str]) -> None:
    out = run("hello", cwd=tmp_path, env=site)
    assert out.returncode == 0 and "hello from goodplug" in out.stdout
    warning = [line for line in out.stderr.splitlines() if "badplug" in line]
    assert len(warning) <= 1  # at most one line about it


def test_doctor_reports_broken_plugin(tmp_path: Path, site: dict[str, str]) -> None:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "p"\n')
    out = run("doctor", cwd=tmp_path, env=site)
    assert out.returncode == 1
    assert "plugin badplug loads" in out.stdout and "FAIL" in out.stdout
    assert "audit log chain" in out.stdout


def test_doctor_outside_a_project_says_so_and_writes_nothing(
    tmp_path: Path, site: dict[str, str]
) -> None:
    out = run("doctor", cwd=tmp_path, env=site)
    assert out.returncode == 1
    assert "no opsloop.toml" in out.stdout and "opsloop init" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_unknown_plugin_in_allow_list_is_one_line_exit_2(
    tmp_path: Path, site: dict[str, str]
) -> None:
    out = run("plugins", cwd=tmp_path, env={**site, "OPSLOOP_PLUGINS": "godplug"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "'godplug'" in lines[0] and "did you mean 'goodplug'" in lines[0]


def test_disable_plugins_removes_the_broken_one(tmp_path: Path, site: dict[str, str]) -> None:
    out = run("plugins", cwd=tmp_path, env={**site, "OPSLOOP_DISABLE_PLUGINS": "badplug"})
    assert out.returncode == 0, out.stderr
    assert "badplug" not in out.stdout


def test_malformed_config_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text("[monitor]\ndrift_share = 'high'\n")
    out = run("audit", "show", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "monitor.drift_share" in lines[0] and "opsloop.toml" in lines[0]


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    out = run("audit", "show", "--limit", "many", cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--limit" in out.stderr


def test_init_writes_starter_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = run("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert out.returncode == 0
    text = (tmp_path / "proj" / "opsloop.toml").read_text()
    assert 'name = "proj"' in text and "# opsloop project settings" in text
    assert (tmp_path / "proj" / ".opsloop").stat().st_mode & 0o777 == 0o700  # private home
    again = run("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert not list((tmp_path / "proj").glob("*.tmp"))


def test_audit_verify_exit_codes(tmp_path: Path) -> None:
    from opsloop.audit import AuditLog

    run("init", str(tmp_path), cwd=tmp_path)
    log = AuditLog(tmp_path / ".opsloop" / "audit.jsonl")
    for i in range(3):
        log.append("x", str(i))
    assert run("audit", "verify", cwd=tmp_path).returncode == 0
    shown = run("audit", "show", "--json", cwd=tmp_path)
    assert [json.loads(line)["target"] for line in shown.stdout.splitlines()] == ["0", "1", "2"]
    rows = log.path.read_text().splitlines()
    log.path.write_text("\n".join([rows[0], rows[2]]) + "\n")
    bad = run("audit", "verify", cwd=tmp_path)
    assert bad.returncode == 1
    assert "entry 2 is bad" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_runbook_parameter_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    run("init", str(tmp_path), cwd=tmp_path)
    wrong_type = run("runbook", "run", "drift-triage", "-P", "model=3", "-P", "windw=x",
                     cwd=tmp_path)  # fmt: skip
    assert wrong_type.returncode == 2
    lines = wrong_type.stderr.strip().splitlines()
    assert len(lines) == 1 and "'windw'" in lines[0] and "did you mean 'window'" in lines[0]
    not_kv = run("runbook", "run", "drift-triage", "-P", "model", cwd=tmp_path)
    assert not_kv.returncode == 2 and "KEY=VALUE" in not_kv.stderr
    unknown = run("runbook", "run", "drift-triag", cwd=tmp_path)
    assert unknown.returncode == 2 and "did you mean 'drift-triage'" in unknown.stderr
    assert not (tmp_path / ".opsloop" / "runbooks").exists()  # nothing half-written


def test_runbook_wrong_type_is_one_line_exit_2(tmp_path: Path) -> None:
    import nbformat

    run("init", str(tmp_path), cwd=tmp_path)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("window: int = 7  # days to look back\n")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(window * 2)")]
    folder = tmp_path / "notebooks" / "runbooks"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "typed.ipynb")
    out = run("runbook", "run", "typed", "-P", "window=abc", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "parameter 'window' must be int, got 'abc'" in lines[0]
    assert not (tmp_path / ".opsloop" / "runbooks").exists()
    listed = run("runbook", "list", cwd=tmp_path)
    assert "typed" in listed.stdout and "window: int" in listed.stdout


def test_demo_refuses_a_used_folder(tmp_path: Path) -> None:
    (tmp_path / "used" / ".opsloop").mkdir(parents=True)
    out = run("demo", str(tmp_path / "used"), cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "already holds" in out.stderr


def test_bracketed_names_in_tables_print_literally(tmp_path: Path) -> None:
    """rich took `[respond]`, `[plugin.x]` for style tags and dropped them from messages."""
    from opsloop.audit import AuditLog

    (tmp_path / "opsloop.toml").write_text('[respond]\nkernel = "no-such-kernel"\n')
    site = tmp_path / "site"
    fake_distribution(site, "brokenplug", "raise ImportError('set [plugin.brokenplug] token')\n")
    env = {"PYTHONPATH": str(site), "COLUMNS": "400", "OPSLOOP_PLUGINS": "brokenplug"}
    doctor = run("doctor", cwd=tmp_path, env=env)
    assert doctor.returncode == 1
    assert "kernel 'no-such-kernel' is not installed; set [respond] kernel" in doctor.stdout
    assert "ImportError: set [plugin.brokenplug] token" in doctor.stdout
    plugins = run("plugins", cwd=tmp_path, env=env)
    assert "ImportError: set [plugin.brokenplug] token" in plugins.stdout

    AuditLog(tmp_path / ".opsloop" / "audit.jsonl").append("[bold]x", "model[1]")
    shown = run("audit", "show", cwd=tmp_path, env=env)
    assert shown.returncode == 0 and "[bold]x model[1]" in shown.stdout

"""%load_ext opsloop_jupyter: light to load, %opsloop runs CLI commands, projects refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython
from jupyter_testkit import MODEL, incident_project

#: What loading the extension must not import: vendor SDKs and everything heavy.
HEAVY = (
    "mlflow", "dlt", "evidently", "guardrails", "fastapi", "prometheus_client", "presidio_analyzer",
    "papermill", "ipywidgets", "matplotlib", "pandas", "duckdb", "jupyter_server", "tornado",
    "opsloop.cli",
)  # fmt: skip


@pytest.fixture(scope="module")
def ip():  # type: ignore[no-untyped-def]
    shell = get_ipython()
    shell.run_line_magic("load_ext", "opsloop_jupyter")
    return shell


@pytest.mark.parametrize("name", ["opsloop_jupyter", "opsloop"])
def test_load_ext_imports_nothing_heavy(name: str) -> None:
    """In a fresh interpreter, %load_ext registers the magics and imports no vendor SDK."""
    code = f"""
import sys, json
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
shell.run_line_magic("load_ext", "{name}")
print(json.dumps({{"magics": sorted(shell.magics_manager.magics["line"]),
                   "new": sorted(set(sys.modules) - before)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"opsloop", "opsloop_project"} <= set(data["magics"])
    loaded = [m for m in data["new"] if m.split(".")[0] in HEAVY or m in HEAVY]
    assert loaded == [], f"%load_ext {name} imported {loaded}"


def test_opsloop_json_renders_a_table(ip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    _, incident_id = incident_project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")  # the notebook's folder: the CLI searches up from it
    result = ip.run_line_magic("opsloop", "incident list --json")
    assert result.exit_code == 0, result.stderr
    assert incident_id in json.dumps(result.data)
    page = result._repr_html_()
    assert page.count("<table") == 1 and f"<td>{incident_id}</td>" in page


def test_opsloop_rich_output_is_html(ip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    incident_project(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    result = ip.run_line_magic("opsloop", "runbook list")
    assert result.exit_code == 0, result.stderr
    page = result._repr_html_()
    assert "acknowledge" in page and "retrain-check" in page and "<pre" in page


def test_opsloop_error_is_one_line_and_an_exit_code(
    ip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no project here
    result = ip.run_line_magic("opsloop", "incident list")
    assert result.exit_code != 0
    assert result.stderr.strip().startswith("opsloop: error: no opsloop project")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "exit code" in result._repr_html_()


def test_opsloop_project_opens_the_notebook_folder(
    ip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    incident_project(tmp_path / "proj")
    sub = tmp_path / "proj" / "incidents" / "x"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)  # a notebook in a subfolder finds its project, as the CLI does
    project = ip.run_line_magic("opsloop_project", "")
    assert project.root == (tmp_path / "proj").resolve()
    assert ip.user_ns["project"] is project


def test_opsloop_project_refuses_a_folder_that_is_no_project(ip, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=r"no opsloop project at .*no opsloop.toml there"):
        ip.run_line_magic("opsloop_project", str(tmp_path))
    from opsloop_jupyter import open_project

    from opsloop.project import NoProjectError

    with pytest.raises(NoProjectError):
        open_project(tmp_path)


def test_subject_of_the_demo_incident(tmp_path: Path) -> None:
    from opsloop_jupyter.widgets import incident_subject

    project, incident_id = incident_project(tmp_path / "proj")
    assert incident_subject(project, incident_id) == MODEL

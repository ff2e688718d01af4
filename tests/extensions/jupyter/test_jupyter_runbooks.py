"""The shipped runbooks with opsloop-jupyter installed: the approval widget in front of a
rollback (a dry run unattended, applied and audited with ``approved_by``), the incident
view, and a runbook run by hand in a real kernel (nbclient, no papermill) recorded as one
RunbookRun, while opsloop's own papermill run still records exactly one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from jupyter_testkit import SECRET, incident_project
from nbclient import NotebookClient

import opsloop
from opsloop import registry
from opsloop.interfaces import Dataset
from opsloop.project import Project
from opsloop.records import RunbookRun
from opsloop.runbooks import RUN_ID_ENV, record_hand_run, run_runbook, shipped_runbooks_dir

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _mimes(nb: nbformat.NotebookNode) -> set[str]:
    return {
        k
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        for k in o.get("data", {})
    }


def _widget_text(nb: nbformat.NotebookNode) -> str:
    """Every widget's saved state (papermill keeps it in the notebook's metadata)."""
    return json.dumps(nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}))


def _runs(project: Project, runbook: str) -> list[RunbookRun]:
    return [r for r in project.records.list(RunbookRun) if r.runbook == runbook]


# ------------------------------------------------------------------ rollback under papermill
@pytest.fixture
def two_versions(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A project whose model bc@champion moved 1 -> 2 (real MLflow store), so a rollback
    has somewhere to go."""
    from opsloop_mlflow.train import train

    root = tmp_path / "proj"
    root.mkdir()
    (root / "opsloop.toml").write_text(
        '[project]\nname = "rb"\n\n[audit]\nactor = "e2e"\n\n'
        "[monitor]\nprofile_on_register = false\n"
    )
    project = Project.open(root)
    frame = pd.read_csv(Path(opsloop.__file__).parent / "data" / "breast_cancer.csv").iloc[:150]
    lineage = {"dataset": "raw.bc_train", "load_ids": ["l1"], "content_hash": "c0ffee"}
    for _ in range(2):
        trained = train(Dataset(name="bc_train", frame=frame), "target")
        registry.register_model(project, "bc", trained, dict(lineage))
    registry.promote(project, "bc", "1")
    registry.promote(project, "bc", "2")
    yield project
    project.close()


@pytest.mark.slow  # two papermill runs that each open an MLflow store: ~30 s here
def test_rollback_shows_the_approval_widget_dry_run_then_applies(two_versions) -> None:  # type: ignore[no-untyped-def]
    project = two_versions
    dry = run_runbook(project, "rollback", {"model": "bc"})
    assert dry.status == "succeeded", dry.error
    assert (dry.result["outcome"], dry.result["recommendation"]) == (
        "dry_run",
        "approve-to-roll-back",
    )
    nb = nbformat.read(dry.output_path, as_version=4)
    assert WIDGET_VIEW in _mimes(nb)  # the ApprovalWidget, saved with the executed notebook
    state = _widget_text(nb)
    assert "roll bc@champion back from version 2 to version 1" in state
    assert "dry run: would roll bc@champion back" in state
    assert "Approval needs approved_by (unattended run)" in state
    assert registry.current_version(project, "bc", "champion") == "2"  # nothing applied
    actions = [e["action"] for e in project.audit.entries()]
    assert "action.dry_run" in actions and "action.approve" not in actions
    assert [r.by_hand for r in _runs(project, "rollback")] == [False]  # the engine's, once

    done = run_runbook(project, "rollback", {"model": "bc", "approved_by": "bob"})
    assert done.status == "succeeded", done.error
    assert (done.result["outcome"], done.result["approved_by"]) == ("done", "bob")
    assert registry.current_version(project, "bc", "champion") == "1"
    entries = list(project.audit.entries())
    approve = [e for e in entries if e["action"] == "action.approve"]
    assert [e["detail"]["approved_by"] for e in approve] == ["bob"]
    assert any(e["action"] == "model.rollback" for e in entries[entries.index(approve[0]) :])
    state = _widget_text(nbformat.read(done.output_path, as_version=4))
    assert "done: roll bc@champion back from version 2 to version 1 (approved by bob)" in state
    assert len(_runs(project, "rollback")) == 2


# ------------------------------------------------------------------ a runbook run by hand
@pytest.fixture
def proj(tmp_path: Path):  # type: ignore[no-untyped-def]
    project, incident_id = incident_project(tmp_path / "proj")
    yield project, incident_id
    project.close()


def _hand_copy(folder: Path, runbook: str, values: dict[str, Any]) -> Path:
    """The shipped runbook with a cell after its parameters, as a person (or the JupyterLab
    panel) fills them in; no papermill executes it."""
    nb = nbformat.read(shipped_runbooks_dir() / f"{runbook}.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    filled = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(filled))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{runbook}.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_runbook_run_by_hand_records_one_run(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    path = _hand_copy(
        project.root / "incidents" / incident_id,
        "postmortem",
        {"project_dir": str(project.root), "incident_id": incident_id},
    )
    nb = nbformat.read(path, as_version=4)
    # the suite's own settings (an audit key folder) stay; nothing says "papermill run"
    env = {k: v for k, v in os.environ.items() if k != RUN_ID_ENV and not k.startswith("JPY_")}
    env |= {"JPY_SESSION_NAME": str(path), "JUPYTERHUB_USER": "erin"}  # what Jupyter sets
    assert RUN_ID_ENV not in env
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        last = len(nb.cells) - 1
        client.execute_cell(nb.cells[last], last)  # the person runs the last cell again

    runs = _runs(project, "postmortem")
    assert len(runs) == 1, runs  # once per outcome in a kernel session
    run = runs[0]
    assert run.by_hand and run.actor == "erin" and run.status == "succeeded"
    assert run.output_path == str(path) and run.incident_id == incident_id
    assert run.parameters["incident_id"] == incident_id
    assert run.result["recommendation"] == "review-and-complete-draft"
    audited = [e for e in project.audit.entries() if e["action"] == "runbook.run"]
    assert len(audited) == 1 and audited[0]["actor"] == "erin"
    assert audited[0]["after"]["run_id"] == run.id and audited[0]["after"]["by_hand"] is True
    printed = "".join(o.get("text", "") for o in nb.cells[last].outputs)
    assert f"recorded run {run.id} by erin (run by hand)" in printed
    assert WIDGET_VIEW in _mimes(nb)  # the incident view
    assert (path.parent / "postmortem.md").is_file()  # the draft, beside the notebook

    engine = run_runbook(project, "postmortem", incident_id=incident_id)  # under papermill
    assert engine.status == "succeeded", engine.error
    runs = _runs(project, "postmortem")
    assert len(runs) == 2 and [r.by_hand for r in runs].count(False) == 1  # the engine's only
    assert WIDGET_VIEW in _mimes(nbformat.read(engine.output_path, as_version=4))


def test_a_hand_run_masks_secrets_and_records_each_new_outcome_once(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    params = {"project_dir": str(project.root), "incident_id": incident_id, "days": 3,
              "api_token": SECRET}  # fmt: skip
    first = record_hand_run(project, "retrain-check", {"summary": f"ok {SECRET}"},
                            parameters=params, actor="frank")  # fmt: skip
    again = record_hand_run(project, "retrain-check", {"summary": f"ok {SECRET}"},
                            parameters=params, actor="frank")  # fmt: skip
    assert first is not None and again is not None and again.id == first.id
    changed = record_hand_run(project, "retrain-check", {"summary": "approved"},
                              parameters=params, actor="frank")  # fmt: skip
    assert changed is not None and changed.id != first.id
    assert first.parameters["api_token"] != SECRET and first.parameters["days"] == 3
    assert SECRET not in first.result["summary"]
    stored = (project.home).rglob("*")
    for file in stored:
        if file.is_file() and file.suffix in (".jsonl", ".json", ".log", ""):
            assert SECRET not in file.read_text(errors="replace"), file
    assert len(_runs(project, "retrain-check")) == 2


def test_under_opsloop_papermill_a_hand_record_is_a_no_op(proj, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    project, _ = proj
    monkeypatch.setenv(RUN_ID_ENV, "rbr_engine")
    assert record_hand_run(project, "retrain-check", {"summary": "x"}, parameters={}) is None
    assert _runs(project, "retrain-check") == []


def test_without_the_extension_the_shipped_runbooks_print_plain_output(
    proj, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The core alone: a kernel where ``import opsloop_jupyter`` fails runs the runbook."""
    project, incident_id = proj
    hidden = tmp_path / "no-extension"
    hidden.mkdir()
    (hidden / "opsloop_jupyter.py").write_text(
        'raise ImportError("opsloop-jupyter is not installed")\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(hidden))  # first on the kernel's sys.path
    run = run_runbook(project, "postmortem", incident_id=incident_id)
    assert run.status == "succeeded", run.error
    assert run.result["recommendation"] == "review-and-complete-draft"
    nb = nbformat.read(run.output_path, as_version=4)
    assert WIDGET_VIEW not in _mimes(nb) and "text/markdown" in _mimes(nb)
    assert len(_runs(project, "postmortem")) == 1

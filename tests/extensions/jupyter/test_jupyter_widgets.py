"""The runbook widgets: launcher checks, secrets, approvals in the audit log, timeline, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ipywidgets as w
import nbformat
import pytest
from jupyter_testkit import MODEL, SECRET, incident_project
from opsloop_jupyter import widgets as ow

from opsloop.records import Approval, RunbookRun
from opsloop.respond import incident_view


def _all_state(root: w.Widget) -> str:
    """Every synced trait of a widget and its children, as the notebook would save it."""
    seen: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        widget = stack.pop()
        seen.append(widget.get_state())
        stack.extend(getattr(widget, "children", ()))
    return json.dumps(seen, default=str)


@pytest.fixture
def proj(tmp_path: Path):  # type: ignore[no-untyped-def]
    project, incident_id = incident_project(tmp_path / "proj")
    yield project, incident_id
    project.close()


def test_launcher_form_follows_the_typed_parameters(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    form = ow.RunbookLauncher("retrain-check", project=project, incident_id=incident_id)
    assert list(form.fields) == ["project_dir", "incident_id", "days", "api_token"]
    assert isinstance(form.fields["days"], w.Text) and form.fields["days"].value == "7"
    assert isinstance(form.fields["api_token"], w.Password)  # a secret by its name
    assert form.fields["incident_id"].value == incident_id
    assert form.fields["project_dir"].value == str(project.root)


def test_launcher_refuses_a_wrong_type_beside_the_field(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    form = ow.RunbookLauncher("retrain-check", project=project, incident_id=incident_id)
    form.fields["days"].value = "seven"
    form.fields["api_token"].value = SECRET  # as the browser sends it
    assert form.fields["api_token"].value == ""  # taken at once, not kept in the widget
    assert "secret received" in form.fields["api_token"].placeholder
    assert form.run() is None
    assert (
        "parameter &#x27;days&#x27; must be int, got &#x27;seven&#x27;" in form.errors["days"].value
    )
    assert form.errors["api_token"].value == "" and "fix the fields" in form.status.value
    assert form.fields["api_token"].value == ""  # read once, then gone from the widget
    assert SECRET not in _all_state(form)
    assert project.records.list(RunbookRun) == []  # nothing ran


@pytest.mark.slow
def test_launcher_runs_the_runbook_and_keeps_the_secret_out(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    done: list[RunbookRun] = []
    form = ow.RunbookLauncher(
        "retrain-check", project=project, incident_id=incident_id, on_run=done.append
    )
    form.fields["days"].value = "3"
    form.fields["api_token"].value = SECRET
    run = form.run()
    assert run is not None and run.status == "succeeded", form.status.value
    assert done == [run] and run.incident_id == incident_id
    assert run.parameters["days"] == 3
    executed = Path(run.output_path).read_text(encoding="utf-8")
    assert "checking 3 days of feedback" in executed
    for text in (
        executed,
        _all_state(form),
        json.dumps(run.to_dict()),
        project.audit.path.read_text(),
    ):
        assert SECRET not in text


def test_approval_click_is_audited_with_the_approver(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    widget = ow.ApprovalWidget(
        ow.acknowledge_action(project, incident_id, "looked at it"),
        project=project,
        approver="alice",
    )
    assert (
        "acknowledge incident" in widget.children[0].value
        and "acknowledged" in widget.children[0].value
    )
    assert incident_view(project, incident_id).status == "open"  # showing it changes nothing
    widget.button.click()
    assert widget.result is not None and widget.result.outcome == "done"
    assert incident_view(project, incident_id).status == "acknowledged"
    approvals = [e for e in project.audit.entries() if e["action"] == "action.approve"]
    assert len(approvals) == 1 and approvals[0]["target"] == incident_id
    assert approvals[0]["detail"]["approved_by"] == "alice"
    assert [a.approved_by for a in project.records.list(Approval)] == ["alice"]
    assert widget.button.disabled and "approved by alice" in widget.status.value


def test_unattended_approve_without_an_approver_changes_nothing(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    result = ow.approve(ow.acknowledge_action(project, incident_id), project=project)
    assert not isinstance(result, ow.ApprovalWidget) and result.outcome == "dry_run"
    assert incident_view(project, incident_id).status == "open"
    assert [e["action"] for e in project.audit.entries()][-1] == "action.dry_run"
    done = ow.approve(
        ow.acknowledge_action(project, incident_id), approved_by="bob", project=project
    )
    assert done.outcome == "done" and incident_view(project, incident_id).status == "acknowledged"


def test_incident_view_shows_the_timeline(proj) -> None:  # type: ignore[no-untyped-def]
    project, incident_id = proj
    kinds = [e["kind"] for e in ow.incident_timeline(project, incident_id)]
    assert {"signal", "alert", "incident", "audit"} <= set(kinds)
    view = ow.IncidentView(incident_id, project=project)
    assert incident_id in view.table.value and "status <b>open</b>" in view.table.value
    ow.approve(ow.acknowledge_action(project, incident_id), approved_by="carol", project=project)
    view.refresh()
    assert "status <b>acknowledged</b>" in view.table.value and "action.approve" in view.table.value


def test_drift_and_quality_plots(proj) -> None:  # type: ignore[no-untyped-def]
    project, _ = proj
    fig = ow.drift_plot(MODEL, project=project)
    line = fig.axes[0].lines[0]
    assert list(line.get_ydata()) == [0.12, 0.31]
    assert any(ln.get_ydata()[0] == 0.2 for ln in fig.axes[0].lines[1:])  # the threshold
    empty = ow.quality_plot(MODEL, project=project)
    assert empty.axes[0].texts[0].get_text() == "no signals recorded yet"


@pytest.mark.slow
def test_unattended_runbook_renders_widgets_and_approves_nothing(proj) -> None:  # type: ignore[no-untyped-def]
    """Under papermill (`opsloop runbook run`) widgets render; no one clicks, nothing changes."""
    from opsloop.runbooks import run_runbook

    project, incident_id = proj
    run = run_runbook(
        project, "acknowledge", {"project_dir": str(project.root)}, incident_id=incident_id
    )
    assert run.status == "succeeded", run.error
    nb = nbformat.read(run.output_path, as_version=4)
    mimes = {
        k
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        for k in o.get("data", {})
    }
    assert "application/vnd.jupyter.widget-view+json" in mimes and "image/png" in mimes
    assert incident_view(project, incident_id).status == "open"
    assert "action.approve" not in [e["action"] for e in project.audit.entries()]
    approved = run_runbook(
        project,
        "acknowledge",
        {"project_dir": str(project.root), "approved_by": "dana"},
        incident_id=incident_id,
    )
    assert approved.status == "succeeded", approved.error
    assert incident_view(project, incident_id).status == "acknowledged"
    entry = [e for e in project.audit.entries() if e["action"] == "action.approve"][-1]
    assert entry["detail"]["approved_by"] == "dana"


def test_a_secret_with_a_wrong_type_is_refused_without_echo(proj) -> None:  # type: ignore[no-untyped-def]
    import nbformat as nbf
    from jupyter_testkit import _runbook

    project, _ = proj
    folder = project.root / "notebooks" / "runbooks"
    nbf.write(
        _runbook("Rotate a key", "vault_token: int = 0  # numeric", []), folder / "rotate.ipynb"
    )
    form = ow.RunbookLauncher("rotate", project=project)
    assert isinstance(form.fields["vault_token"], w.Password)
    form.fields["vault_token"].value = SECRET
    assert form.run() is None
    assert "must be int, got a secret str" in form.errors["vault_token"].value
    assert SECRET not in _all_state(form)

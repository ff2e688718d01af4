"""The runbook and report library without a kernel: every shipped notebook is well formed
(kind, summary, declared result, typed parameters, no outputs), reports are listed as
reports, the offline HTML export, and the postmortem timeline and draft built from records
and the audit log. The notebooks themselves run in tests/e2e/test_runbook_library.py."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from opsloop.notebook_html import export_html, html_path_for, remote_assets, to_html
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import Alert, Approval, Incident, IncidentUpdate, RunbookRun, Signal
from opsloop.runbook_kit import (
    RUN_ID_ENV,
    incident_context,
    incident_timeline,
    postmortem_markdown,
    write_text_next_to_run,
)
from opsloop.runbooks import (
    inspect_parameters,
    list_runbooks,
    runbook_spec,
    shipped_reports_dir,
    shipped_runbooks_dir,
)

RUNBOOKS = {
    "drift-triage",
    "rollback",
    "guard-incident",
    "load-failure",
    "integrity-failure",
    "deployment-readiness",
    "retrain-and-promote",
    "postmortem",
}
REPORTS = {"model-health", "governance"}
SHIPPED = sorted([*shipped_runbooks_dir().glob("*.ipynb"), *shipped_reports_dir().glob("*.ipynb")])


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    opsloop = Path(sys.executable).parent / "opsloop"
    return subprocess.run([str(opsloop), "-p", str(root), *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=120)  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "t"\n')
    return Project.open(tmp_path, plugins=make_manager(), environ={"OPSLOOP_ACTOR": "carol"})


def test_the_library_ships_every_runbook_and_report() -> None:
    assert {p.stem for p in shipped_runbooks_dir().glob("*.ipynb")} == RUNBOOKS
    assert {p.stem for p in shipped_reports_dir().glob("*.ipynb")} == REPORTS
    # one source of truth: the package's notebooks folder is the repository's notebooks/
    assert shipped_runbooks_dir().parent.resolve() == (
        Path(__file__).resolve().parents[2] / "notebooks"
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_notebook_is_well_formed(path: Path) -> None:
    nb = json.loads(path.read_text())
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
    meta = nb["metadata"]["opsloop"]
    spec = runbook_spec(path)
    assert spec.kind == ("report" if path.stem in REPORTS else "runbook") == meta["kind"]
    assert spec.summary == meta["summary"] and len(spec.summary) < 140
    assert {"summary", "recommendation"} <= set(meta["result"])
    params = inspect_parameters(spec)  # typed and parseable: raises otherwise
    assert params["project_dir"].default == "."
    sources = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert "runbook_result(" in sources[-1]  # declares its result in the last cell
    declared = "\n".join(sources[-2:])
    for key in meta["result"]:  # every declared key is passed by that call
        assert f"{key}=" in declared or f'"{key}":' in declared, key
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "".join(nb["cells"][0]["source"]).startswith("# ")


def test_destructive_runbooks_take_an_approval_and_go_through_actions() -> None:
    for name in ("rollback", "retrain-and-promote"):
        path = shipped_runbooks_dir() / f"{name}.ipynb"
        params = inspect_parameters(runbook_spec(path))
        assert params["approved_by"].default == "" and not params["approved_by"].required
        text = path.read_text()
        assert "perform(project, action, approved_by=approved_by)" in text
        assert "registry.rollback(" not in text and "registry.promote(" not in text


def test_reports_are_listed_and_marked_as_reports(project: Project) -> None:
    own = project.root / "notebooks" / "reports"
    own.mkdir(parents=True)
    nb = new_notebook(cells=[new_markdown_cell("# Cost report"), new_code_cell("x = 1")])
    nbformat.write(nb, own / "cost.ipynb")
    nb.metadata["opsloop"] = {"kind": "runbook"}  # metadata wins over the folder
    nbformat.write(nb, own / "odd.ipynb")
    specs = {s.name: s for s in list_runbooks(project)}
    assert specs["cost"].kind == "report" and specs["cost"].summary == "Cost report"
    assert specs["odd"].kind == "runbook"
    assert {n for n, s in specs.items() if s.kind == "report"} == REPORTS | {"cost"}

    listed = _cli(project.root, "runbook", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    kinds = {row["name"]: row["kind"] for row in json.loads(listed.stdout)}
    assert kinds["governance"] == "report" and kinds["rollback"] == "runbook"
    shown = _cli(project.root, "runbook", "inspect", "governance")
    assert shown.returncode == 0 and "governance (report):" in shown.stdout


def _png() -> str:
    # a 1x1 PNG
    raw = bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360f8cfc0f01f0005000201a5b3d4f50000000049454e44ae426082"
    )
    return base64.b64encode(raw).decode()


def test_html_export_is_offline_and_keeps_outputs(tmp_path: Path) -> None:
    cell = new_code_cell("plot()")
    cell.outputs = [
        new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
        new_output("stream", name="stdout", text="drifted: income\n"),
    ]
    nb = new_notebook(
        cells=[new_markdown_cell("# Triage\n\n| a | b |\n|---|---|\n| 1 | 2 |"), cell]
    )
    path = tmp_path / "rbr_1.ipynb"
    nbformat.write(nb, path)

    html_path = export_html(path)

    assert html_path == tmp_path / "rbr_1.html" == html_path_for(path)
    html = html_path.read_text()
    assert remote_assets(html) == []
    assert "data:image/png;base64," + _png()[:20] in html
    assert "drifted: income" in html and "<table>" in html
    assert "require.js" not in html and "mathjax" not in html.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rbr_1.html", "rbr_1.ipynb"]


def test_remote_assets_finds_what_a_browser_would_fetch() -> None:
    page = (
        '<script src="https://cdnjs.cloudflare.com/require.js"></script>'
        "<link rel=stylesheet href=//cdn.example/x.css>"
        "<style>@import url('https://fonts.example/f.css');</style>"
        '<script type="module">import("https://cdn.example/m.mjs")</script>'
        '<a href="https://example.org/doc">a link is not fetched</a>'
    )
    found = remote_assets(page)
    assert len(found) == 4 and not any("example.org/doc" in f for f in found)
    # and the exporter drops tags that load from a CDN if a template adds them
    nb = new_notebook(cells=[new_markdown_cell("x")])
    assert remote_assets(to_html(nbformat.writes(nb))) == []


def _incident(project: Project) -> Incident:
    signal = Signal(source="monitor.profile", type="drift", severity="critical", subject="churn",
                    summary="12 of 30 features drifted", value=0.4)  # fmt: skip
    project.emit(signal)
    alert = Alert(rule="model-drift", severity="critical", summary=signal.summary,
                  signal_ids=[signal.id], subject="churn", runbook="drift-triage")  # fmt: skip
    project.emit(alert)
    incident = Incident(title="drift on churn", severity="critical", alert_ids=[alert.id],
                        subject="churn")  # fmt: skip
    project.emit(incident)
    project.audit.append("incident.open", incident.id, after={"alert": alert.id})
    run = RunbookRun(runbook="drift-triage", input_path="in", output_path="/x/rbr.ipynb",
                     incident_id=incident.id, started_at=incident.created_at,
                     result={"summary": "12", "recommendation": "retrain-or-rollback"})  # fmt: skip
    project.emit(run)
    project.emit(IncidentUpdate(incident_id=incident.id, runbook_run_id=run.id, note="ran"))
    project.audit.append("runbook.run", "drift-triage", after={"run_id": run.id})
    approval = Approval(action="model.rollback", target="churn@champion", approved_by="dave",
                        summary="roll churn@champion back from version 3 to version 2")  # fmt: skip
    project.emit(approval)
    project.audit.append("action.approve", "churn@champion",
                         detail={"action": "model.rollback", "approved_by": "dave"})  # fmt: skip
    project.audit.append("model.rollback", "churn@champion", before={"version": "3"},
                         after={"version": "2"})  # fmt: skip
    project.audit.append("model.promote", "other@champion")  # another model: not on it
    project.emit(IncidentUpdate(incident_id=incident.id, status="resolved", note="rolled back"))
    return incident


def test_postmortem_timeline_and_draft(project: Project) -> None:
    incident = _incident(project)
    ctx = incident_context(project, incident.id)
    assert ctx.status == "resolved" and len(ctx.signals) == 1 and len(ctx.runs) == 1

    events = incident_timeline(project, ctx)

    kinds = [e.kind for e in events]
    assert kinds[:3] == ["signal", "alert", "incident"]
    assert [e.what for e in events if e.kind == "runbook"] == [
        "runbook drift-triage succeeded: retrain-or-rollback"
    ]
    audit = [e.what for e in events if e.kind == "audit"]
    assert audit == ["action.approve churn@champion (dave)", "model.rollback churn@champion"]
    assert [e.time for e in events] == sorted(e.time for e in events)

    draft = postmortem_markdown(project, ctx, events)
    assert draft.startswith("# Postmortem (draft): drift on churn")
    assert "status **resolved**" in draft
    assert "roll churn@champion back from version 3 to version 2 (approved by dave" in draft
    assert "status resolved: rolled back" in draft
    assert draft.count("TODO") >= 4  # what people must answer is left open, not invented
    assert "other@champion" not in draft


def test_an_unknown_incident_is_one_clear_line(project: Project) -> None:
    with pytest.raises(Exception, match="'inc_nope' is not an incident of the project"):
        incident_context(project, "inc_nope")


def test_files_written_next_to_the_run_never_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "rbr_42")
    first = write_text_next_to_run(str(tmp_path), "postmortem.md", "one")
    second = write_text_next_to_run(str(tmp_path), "postmortem.md", "two")
    assert first == tmp_path / "rbr_42.postmortem.md" and first.read_text() == "one"
    assert second != first and second.read_text() == "two"

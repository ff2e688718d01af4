"""A small project with an open incident and two widget runbooks, for the Jupyter tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

from opsloop.project import Project
from opsloop.records import Signal
from opsloop.respond import list_incidents
from opsloop.testing import make_project

#: A value the tests type into a secret field, then grep for everywhere it must not be.
SECRET = "s3cr3t-TOKEN-4f9a1c"
MODEL = "fraud"

ACKNOWLEDGE_PARAMETERS = """\
project_dir: str = "."  # the opsloop project folder (opsloop fills it in)
incident_id: str = ""  # the incident (opsloop fills it in)
approved_by: str = ""  # who approves acknowledging it, for unattended runs
note: str = ""  # a note for the incident's timeline"""

ACKNOWLEDGE_BODY = [
    "from opsloop.project import Project\n"
    "from opsloop_jupyter import widgets as ow\n\n"
    "project = Project.open(project_dir)\n"
    "ow.IncidentView(incident_id, project=project)",
    "action = ow.acknowledge_action(project, incident_id, note)\n"
    "ow.approve(action, approved_by=approved_by, project=project)",
    'ow.RunbookLauncher("retrain-check", project=project, incident_id=incident_id)',
    "model = ow.incident_subject(project, incident_id)\n"
    "ow.drift_plot(model, project=project)",
]

RETRAIN_PARAMETERS = """\
project_dir: str = "."  # the opsloop project folder
incident_id: str = ""  # the incident
days: int = 7  # how many days of feedback to check
api_token: str = ""  # the feature store token (secret)"""


def _runbook(summary: str, parameters: str, body: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["opsloop"] = {"summary": summary}
    cells = [nbformat.v4.new_markdown_cell(f"# {summary}")]
    param = nbformat.v4.new_code_cell(parameters)
    param.metadata["tags"] = ["parameters"]
    cells.append(param)
    cells += [nbformat.v4.new_code_cell(src) for src in body]
    nb.cells = cells
    return nb


def write_runbooks(root: Path) -> None:
    """Two project runbooks: acknowledge (widgets, approval) and retrain-check (int, secret)."""
    folder = root / "notebooks" / "runbooks"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(
        _runbook("Acknowledge an incident after a look at it", ACKNOWLEDGE_PARAMETERS, ACKNOWLEDGE_BODY),
        str(folder / "acknowledge.ipynb"),
    )
    nbformat.write(
        _runbook(
            "Check whether a retrain is due",
            RETRAIN_PARAMETERS,
            ['print(f"checking {days} days of feedback")'],
        ),
        str(folder / "retrain-check.ipynb"),
    )


def incident_project(root: Path) -> tuple[Project, str]:
    """A project in ``root`` with an open drift incident on MODEL; (project, incident id)."""
    project = make_project(root)
    write_runbooks(root)
    for value in (0.12, 0.31):
        project.emit(
            Signal(
                source="test.drift",
                type="drift",
                severity="warning",
                subject=MODEL,
                summary=f"{MODEL}: 3 of 12 features drifted",
                value=value,
                threshold=0.2,
            )
        )
    incidents = [v for v in list_incidents(project, open_only=True) if v.incident.subject == MODEL]
    assert incidents, "the drift signal opened no incident"
    return project, incidents[-1].incident.id

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
    "model = ow.incident_subject(project, incident_id)\now.drift_plot(model, project=project)",
]

RETRAIN_PARAMETERS = """\
project_dir: str = "."  # the opsloop project folder
incident_id: str = ""  # the incident
days: int = 7  # how many days of feedback to check
api_token: str = ""  # the feature store token (secret)"""


def _runbook(summary: str, parameters: str, body: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
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
        _runbook(
            "Acknowledge an incident after a look at it", ACKNOWLEDGE_PARAMETERS, ACKNOWLEDGE_BODY
        ),
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


# ------------------------------------------------------------------ a JupyterLab on loopback
LABEXTENSION = (
    Path(__file__).resolve().parents[3] / "extensions/jupyter/src/opsloop_jupyter/labextension"
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """A JupyterLab server started on loopback with token auth, in its own Jupyter dirs."""

    def __init__(
        self, root: Path, home: Path, *args: str, extra_env: dict[str, str] | None = None
    ) -> None:
        import os
        import secrets
        import shutil
        import subprocess
        import sys

        self.root = root
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = home / "data"
        (data / "labextensions").mkdir(parents=True, exist_ok=True)
        # the labextension from this source tree, ahead of any installed copy
        (data / "labextensions" / "opsloop-jupyter").symlink_to(LABEXTENSION)
        config = home / "config"
        (config / "labconfig").mkdir(parents=True, exist_ok=True)
        (config / "labconfig" / "page_config.json").write_text(
            '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSLOOP_", "JUPYTER"))}
        if "OPSLOOP_CONFIG_HOME" in os.environ:  # the suite's audit keys (tests/conftest.py)
            env["OPSLOOP_CONFIG_HOME"] = os.environ["OPSLOOP_CONFIG_HOME"]
        env |= {
            "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_PATH": str(data),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        } | (extra_env or {})
        lab = shutil.which("jupyter-lab", path=str(Path(sys.executable).parent))
        assert lab, "jupyter-lab is not installed in this venv (make setup)"
        self.log = (home / "lab.log").open("wb")
        self.proc = subprocess.Popen(
            [
                lab,
                "--no-browser",
                "--allow-root",  # CI and this machine run tests as root
                "--ip=127.0.0.1",
                f"--port={self.port}",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.jpserver_extensions={'opsloop_jupyter': True}",
                "--LabApp.extension_manager=readonly",
                "--ServerApp.shutdown_no_activity_timeout=600",
                *args,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self) -> None:
        import time

        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: see {self.log.name}")
            try:
                r = httpx.get(f"{self.url}/api/status", headers=self.auth, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not start in 60 s: see {self.log.name}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except Exception:  # noqa: BLE001 - a server that ignores SIGTERM is killed
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()

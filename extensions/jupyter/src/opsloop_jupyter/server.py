"""The Jupyter Server extension behind the sidebar: incidents, runbooks, open a runbook.

Routes (under the server's base URL, all behind Jupyter's own authentication and authorizer,
resource ``opsloop``; the POST is also checked against Jupyter's XSRF token):

- ``GET  opsloop/api/incidents``  open incidents, with the runbook their alert suggests
- ``GET  opsloop/api/runbooks``   runbooks and their typed parameters (no secret defaults)
- ``POST opsloop/api/open``       ``{"runbook", "incident_id"}``: a parameterized copy of the
  runbook with the incident filled in, at ``incidents/<incident id>/<runbook>.ipynb`` in
  the project; the response is its path for JupyterLab to open.

They call the same core functions as ``opsloop incident list``, ``opsloop runbook list``
and ``opsloop runbook inspect``. The project is ``$OPSLOOP_PROJECT`` or the one found from
the server's root folder up, as the CLI finds it; no project is one clear error line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from opsloop.errors import OpsloopError

#: Where parameterized copies go, relative to the project root (visible to Jupyter).
OPENED_DIR = "incidents"


def project_for(root_dir: str) -> Any:
    """The project the server works on: $OPSLOOP_PROJECT, else searched up from root_dir."""
    from opsloop.config import find_config
    from opsloop.project import Project

    if os.environ.get("OPSLOOP_PROJECT"):
        return Project.open(os.environ["OPSLOOP_PROJECT"])
    found = find_config(Path(root_dir).resolve())
    return Project.open(found if found is not None else Path(root_dir))


def open_incidents(project: Any) -> list[dict[str, Any]]:
    """Open incidents (opsloop.respond.list_incidents), newest first, with suggested runbooks."""
    from opsloop.respond import list_incidents

    out = []
    for view in reversed(list_incidents(project, open_only=True)):
        inc = view.incident
        suggested: list[str] = []
        for alert_id in inc.alert_ids:
            runbook = getattr(project.records.get(alert_id), "runbook", None)
            if runbook and runbook not in suggested:
                suggested.append(runbook)
        out.append(
            {
                "id": inc.id,
                "title": inc.title,
                "severity": inc.severity,
                "subject": inc.subject,
                "status": view.status,
                "created_at": inc.created_at,
                "runbooks": suggested,
            }
        )
    return out


def runbooks(project: Any) -> list[dict[str, Any]]:
    """Runbooks (opsloop.runbooks.list_runbooks) and their parameters; no secret default."""
    from opsloop.redact import is_secret_key
    from opsloop.runbooks import inspect_parameters, list_runbooks

    out = []
    for spec in list_runbooks(project):
        params = []
        for p in inspect_parameters(spec).values():
            secret = p.secret or p.name in spec.secret_parameters or is_secret_key(p.name)
            params.append(
                {
                    "name": p.name,
                    "type": p.type,
                    "required": p.required,
                    "help": p.help,
                    "secret": secret,
                    "default": None if secret else p.default,
                }
            )
        out.append({"name": spec.name, "summary": spec.summary, "parameters": params})
    return out


def open_runbook(project: Any, root_dir: str, runbook: str, incident_id: str) -> str:
    """Write a copy of ``runbook`` with the incident filled in; its path under root_dir.

    The filled-in values go through the CLI's parameter checks; a copy that already exists
    is reopened, not overwritten (it may hold a person's work).
    """
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    from opsloop.errors import ParameterError
    from opsloop.names import is_safe_name
    from opsloop.respond import incident_view
    from opsloop.runbooks import coerce_parameters, get_runbook, inspect_parameters

    spec = get_runbook(project, runbook)
    view = incident_view(project, incident_id)
    if not is_safe_name(spec.name) or not is_safe_name(view.incident.id):
        raise ParameterError(f"'{runbook}' / '{incident_id}' is not a safe file name")
    declared = inspect_parameters(spec)
    values: dict[str, Any] = {}
    if "incident_id" in declared:
        values["incident_id"] = view.incident.id
    if "project_dir" in declared:
        values["project_dir"] = str(project.root)
    if "model" in declared and view.incident.subject:
        values["model"] = view.incident.subject
    values = coerce_parameters(spec, values)
    root = Path(root_dir).resolve()
    target = project.root / OPENED_DIR / view.incident.id / f"{spec.name}.ipynb"
    try:
        relative = target.resolve().relative_to(root)
    except ValueError:
        raise OpsloopError(
            f"the project {project.root} is outside Jupyter's root folder {root}; start "
            "JupyterLab in the project folder or a parent of it"
        ) from None
    if not target.exists():
        nb = load_notebook_node(str(spec.path))  # as papermill reads it (tags on every cell)
        nb = parameterize_notebook(nb, values, kernel_name="python3", language="python")
        nb.metadata.setdefault("opsloop", {})["opened_from"] = {
            "runbook": spec.name,
            "incident_id": view.incident.id,
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))  # type: ignore[no-untyped-call]
        project.audit.append(
            "runbook.open",
            view.incident.id,
            after={"path": str(relative)},
            detail={"runbook": spec.name, "parameters": values},
        )
    return str(relative.as_posix())


class _Base(APIHandler):
    #: Jupyter's authorizer sees "read"/"write" on this resource (GET / POST), so a
    #: deployment with its own Authorizer (JupyterHub scopes, say) can restrict the panel.
    auth_resource = "opsloop"

    def project(self) -> Any:
        return project_for(self.settings["server_root_dir"])

    def fail(self, exc: OpsloopError) -> None:
        from opsloop.redact import redact_text

        self.set_status(400)
        self.finish(json.dumps({"error": redact_text(str(exc))}))


class IncidentsHandler(_Base):
    @web.authenticated
    @authorized
    def get(self) -> None:
        try:
            project = self.project()
            self.finish(
                json.dumps({"project": str(project.root), "incidents": open_incidents(project)})
            )
        except OpsloopError as exc:
            self.fail(exc)


class RunbooksHandler(_Base):
    @web.authenticated
    @authorized
    def get(self) -> None:
        try:
            self.finish(json.dumps({"runbooks": runbooks(self.project())}, default=str))
        except OpsloopError as exc:
            self.fail(exc)


class OpenHandler(_Base):
    @web.authenticated
    @authorized
    def post(self) -> None:
        body = self.get_json_body() or {}
        try:
            path = open_runbook(
                self.project(),
                self.settings["server_root_dir"],
                str(body.get("runbook", "")),
                str(body.get("incident_id", "")),
            )
        except OpsloopError as exc:
            self.fail(exc)
            return
        self.finish(json.dumps({"path": path}))


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers (Jupyter Server calls this when the extension is enabled)."""
    web_app = server_app.web_app
    base = url_path_join(web_app.settings["base_url"], "opsloop", "api")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "incidents"), IncidentsHandler),
            (url_path_join(base, "runbooks"), RunbooksHandler),
            (url_path_join(base, "open"), OpenHandler),
        ],
    )
    server_app.log.info("opsloop_jupyter: /opsloop/api handlers registered")


# Jupyter Server 1.x spelling, kept for tools that look for it
load_jupyter_server_extension = _load_jupyter_server_extension

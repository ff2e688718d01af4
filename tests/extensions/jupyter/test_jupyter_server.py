"""The server extension behind the sidebar: Jupyter's auth and XSRF, core functions, no secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from jupyter_testkit import MODEL, Lab, incident_project

from opsloop.project import Project


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, Project, str]]:
    base = tmp_path_factory.mktemp("lab")
    project, incident_id = incident_project(base / "proj")
    server = Lab(base / "proj", base / "jupyter")
    yield server, project, incident_id
    server.stop()
    project.close()


def test_routes_need_jupyters_token(lab) -> None:  # type: ignore[no-untyped-def]
    server, _, incident_id = lab
    for path in ("incidents", "runbooks"):
        r = httpx.get(f"{server.url}/opsloop/api/{path}")
        assert r.status_code == 403, (path, r.status_code)
    r = httpx.post(
        f"{server.url}/opsloop/api/open",
        json={"runbook": "acknowledge", "incident_id": incident_id},
    )
    assert r.status_code == 403


def test_incidents_and_runbooks_come_from_the_core(lab) -> None:  # type: ignore[no-untyped-def]
    server, project, incident_id = lab
    data = httpx.get(f"{server.url}/opsloop/api/incidents", headers=server.auth).json()
    assert data["project"] == str(project.root)
    [incident] = data["incidents"]
    assert incident["id"] == incident_id and incident["subject"] == MODEL
    assert incident["runbooks"] == ["drift-triage"]  # the built-in model-drift rule's runbook
    runbooks = {
        r["name"]: r
        for r in httpx.get(f"{server.url}/opsloop/api/runbooks", headers=server.auth).json()[
            "runbooks"
        ]
    }
    assert {"acknowledge", "retrain-check", "drift-triage"} <= set(runbooks)
    token = next(p for p in runbooks["retrain-check"]["parameters"] if p["name"] == "api_token")
    assert token["secret"] is True and token["default"] is None


def test_open_makes_a_filled_in_copy_behind_xsrf(lab) -> None:  # type: ignore[no-untyped-def]
    server, project, incident_id = lab
    body = {"runbook": "drift-triage", "incident_id": incident_id}
    with httpx.Client(base_url=server.url) as browser:  # a logged-in browser: cookies, no token
        assert browser.get(f"/lab?token={server.token}").status_code == 200
        assert "_xsrf" in browser.cookies
        r = browser.post("/opsloop/api/open", json=body)
        assert r.status_code == 403  # no XSRF token: refused by Jupyter
        r = browser.post(
            "/opsloop/api/open", json=body, headers={"X-XSRFToken": browser.cookies["_xsrf"]}
        )
        assert r.status_code == 200, r.text
    path = r.json()["path"]
    assert path == f"incidents/{incident_id}/drift-triage.ipynb"
    nb = nbformat.read(project.root / path, as_version=4)
    [injected] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert (
        f'incident_id = "{incident_id}"' in injected.source
        and f'model = "{MODEL}"' in injected.source
    )
    opened = [e for e in project.audit.entries() if e["action"] == "runbook.open"]
    assert opened and opened[-1]["target"] == incident_id
    # the contents API (what JupyterLab opens) serves it
    assert httpx.get(f"{server.url}/api/contents/{path}", headers=server.auth).status_code == 200


def test_bad_input_is_one_line(lab) -> None:  # type: ignore[no-untyped-def]
    server, _, incident_id = lab
    r = httpx.post(
        f"{server.url}/opsloop/api/open",
        headers=server.auth,
        json={"runbook": "drift-triag", "incident_id": incident_id},
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith(
        "no runbook named 'drift-triag'; did you mean 'drift-triage'"
    )
    r = httpx.post(
        f"{server.url}/opsloop/api/open",
        headers=server.auth,
        json={"runbook": "acknowledge", "incident_id": "inc_nope"},
    )
    assert r.status_code == 400 and "\n" not in r.json()["error"]


def test_responses_hold_no_secret(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, project, _ = lab
    nb = project.root / "notebooks" / "runbooks" / "retrain-check.ipynb"
    text = nb.read_text()
    nb.write_text(
        text.replace('api_token: str = \\"\\"', 'api_token: str = \\"default-token-XYZ\\"')
    )
    try:
        body = httpx.get(f"{server.url}/opsloop/api/runbooks", headers=server.auth).text
        assert "default-token-XYZ" not in body and json.loads(body)["runbooks"]
    finally:
        nb.write_text(text)


def test_a_deployments_authorizer_can_refuse_the_panel(tmp_path: Path) -> None:
    project, incident_id = incident_project(tmp_path / "proj")
    server = Lab(
        tmp_path / "proj",
        tmp_path / "jupyter",
        "--ServerApp.authorizer_class=jupyter_deny_authorizer.DenyOpsloop",
        extra_env={"PYTHONPATH": str(Path(__file__).parent)},
    )
    try:
        assert httpx.get(f"{server.url}/api/contents", headers=server.auth).status_code == 200
        r = httpx.get(f"{server.url}/opsloop/api/incidents", headers=server.auth)
        assert r.status_code == 403
        body = {"runbook": "acknowledge", "incident_id": incident_id}
        r = httpx.post(f"{server.url}/opsloop/api/open", headers=server.auth, json=body)
        assert r.status_code == 403
        assert not (project.root / "incidents").exists()
    finally:
        server.stop()
        project.close()

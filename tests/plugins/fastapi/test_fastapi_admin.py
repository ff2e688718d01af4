"""Admin endpoints: off without a token, bearer auth compared in constant time, audited."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import MODEL, app_for, signature, store_of, trained_model
from opsloop_fastapi.app import token_id

ACTIONS = ("/admin/reload", "/admin/promote", "/admin/rollback")
TOKEN = "s3cret-admin-token-value"


def test_admin_is_off_without_a_token(
    project_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLOOP_ADMIN_TOKEN", raising=False)
    client = TestClient(app_for(project_factory()))
    for path in ACTIONS:
        response = client.post(path, json={"version": "1"}, headers={"authorization": "Bearer x"})
        assert response.status_code == 404
        assert "admin endpoints are off" in response.json()["detail"]


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("Bearer ", 401),
        ("Bearer wrong-token", 403),
        (f"Bearer {TOKEN}x", 403),
        (f"bearer {TOKEN}", 200),
    ],
)
def test_bearer_token_is_required(project_factory: Any, header: str | None, status: int) -> None:
    client = TestClient(app_for(project_factory(), admin_token=TOKEN))
    headers = {"authorization": header} if header is not None else {}
    response = client.post("/admin/reload", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_environment_token_wins_and_is_never_written(
    project_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLOOP_ADMIN_TOKEN", "from-the-environment")
    project = project_factory()
    client = TestClient(app_for(project, admin_token=TOKEN))
    assert (
        client.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"}).status_code
        == 403
    )
    ok = client.post("/admin/reload", headers={"authorization": "Bearer from-the-environment"})
    assert ok.status_code == 200
    text = (project.home / "audit.jsonl").read_text()
    assert "from-the-environment" not in text and TOKEN not in text
    (entry,) = [e for e in project.audit.entries() if e["action"] == "serve.admin.reload"]
    assert entry["actor"].startswith("api:") and len(entry["actor"]) == len("api:") + 12


def test_reload_swaps_when_the_alias_moved(project_factory: Any) -> None:
    project = project_factory()
    store = store_of(project)
    client = TestClient(app_for(project, admin_token=TOKEN))
    auth = {"authorization": f"Bearer {TOKEN}"}
    v2 = store.add(MODEL, trained_model(), signature())
    store.set_alias(MODEL, "champion", v2.version)
    response = client.post("/admin/reload", headers=auth)
    assert response.json()["served"]["champion"]["version"] == "2"
    assert client.get("/version").json()["version"] == "2"
    swaps = [e["actor"] for e in project.audit.entries() if e["action"] == "serve.swap"]
    assert swaps == ["api:" + token_id(TOKEN)]


def test_admin_bodies_are_validated(project_factory: Any) -> None:
    client = TestClient(app_for(project_factory(), admin_token=TOKEN))
    auth = {"authorization": f"Bearer {TOKEN}"}
    response = client.post("/admin/promote", json={"version": "1", "extra": 1}, headers=auth)
    assert response.status_code == 422 and response.json()["fields"] == ["extra"]
    response = client.post("/admin/rollback", content=b"{nope", headers=auth)
    assert response.status_code == 422 and "not valid JSON" in response.json()["detail"]
    response = client.post("/admin/promote", json={"alias": "champion"}, headers=auth)
    assert response.status_code == 422 and response.json()["fields"] == ["version"]

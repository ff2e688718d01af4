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


# ---------------------------------------------------------------------- refused attempts
def admin_client(project: Any, address: str = "10.0.0.1", **settings: Any) -> TestClient:
    app = app_for(project, admin_token=TOKEN, **settings)
    return TestClient(app, client=(address, 40000))


def denied(project: Any) -> list[dict[str, Any]]:
    return [e for e in project.audit.entries() if e["action"] == "serve.admin.denied"]


def test_refused_attempts_are_audited_without_the_token(project_factory: Any) -> None:
    project = project_factory()
    client = admin_client(project)
    guess = "guessed-token-0d9e1f"
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/promote", json={"version": "1"},
                        headers={"authorization": f"Bearer {guess}"})  # fmt: skip
    assert wrong.status_code == 403
    entries = denied(project)
    assert [(e["detail"]["path"], e["detail"]["status"]) for e in entries] == [
        ("/admin/reload", 401),
        ("/admin/promote", 403),
    ]
    assert {e["detail"]["client"] for e in entries} == {"10.0.0.1"}
    assert {e["actor"] for e in entries} == {"client:10.0.0.1"}
    assert [e["detail"]["reason"] for e in entries] == ["no bearer token", "wrong token"]
    text = (project.home / "audit.jsonl").read_text()
    assert guess not in text and TOKEN not in text
    ok = client.post("/admin/reload", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200  # below the limit the right token works
    assert len(denied(project)) == 2


def test_a_client_is_locked_out_after_max_failures_and_others_are_not(
    project_factory: Any,
) -> None:
    project = project_factory()
    app = app_for(project, admin_token=TOKEN, admin_max_failures=3)
    attacker = TestClient(app, client=("10.0.0.66", 40000))
    operator = TestClient(app, client=("10.0.0.7", 40000))
    right = {"authorization": f"Bearer {TOKEN}"}
    for i in range(3):
        response = attacker.post("/admin/reload", headers={"authorization": f"Bearer no{i}"})
        assert response.status_code == 403
    for headers in ({"authorization": "Bearer no3"}, right, {}):
        locked = attacker.post("/admin/reload", headers=headers)
        assert locked.status_code == 429, locked.text  # even the right token: no oracle
        assert 1 <= int(locked.headers["retry-after"]) <= 300
        assert "plugin.fastapi.admin_max_failures" in locked.json()["detail"]
    assert operator.post("/admin/reload", headers=right).status_code == 200
    metrics = operator.get("/metrics").text
    assert 'opsloop_admin_refused_total{status="403"} 3.0' in metrics
    assert 'opsloop_admin_refused_total{status="429"} 3.0' in metrics
    assert len(denied(project)) == 3  # the 429s are not audited one by one
    (lock,) = [e for e in project.audit.entries() if e["action"] == "serve.admin.locked"]
    assert lock["detail"]["client"] == "10.0.0.66" and lock["detail"]["failures"] == 3


def test_a_success_clears_the_failures(project_factory: Any) -> None:
    client = admin_client(project_factory(), admin_max_failures=3)
    right = {"authorization": f"Bearer {TOKEN}"}
    for _ in range(3):
        assert (
            client.post("/admin/reload", headers={"authorization": "Bearer x"}).status_code == 403
        )
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers=right).status_code == 200


def test_the_failure_window_slides() -> None:
    from opsloop_fastapi.limits import FailureWindow

    window = FailureWindow(limit=2, window=10)
    assert window.fail("a", 100.0) is False
    assert window.locked("a", 101.0) == 0
    assert window.fail("a", 105.0) is True
    assert window.locked("a", 106.0) == pytest.approx(4.0)  # until the failure at 100 ages out
    assert window.locked("b", 106.0) == 0
    assert window.locked("a", 110.5) == 0
    assert window.fail("a", 111.0) is True  # 105 and 111 are both within 10 s
    window.clear("a")
    assert window.locked("a", 112.0) == 0

"""Hot-swap on a real MLflow registry and a real uvicorn server: reload, poll, admin, integrity."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi_testkit import ADMIN, MODEL, one_row

from opsloop import registry

AUTH = {"authorization": f"Bearer {ADMIN}"}


def start(project: Any) -> Any:
    ref = registry.get_store(project).resolve(MODEL, "champion")
    return project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=0)


def champion(project: Any) -> str:
    return registry.get_store(project).resolve(MODEL, "champion").version


@pytest.fixture
def at_version_1(mlflow_registry: dict[str, Any]) -> Any:
    """The module's project with champion back on version 1 after the test."""
    project = mlflow_registry["project"]
    yield project
    store = registry.get_store(project)
    if store.resolve(MODEL, "champion").version != "1":
        store.set_alias(MODEL, "champion", "1")


def test_reload_swaps_to_the_version_the_alias_names(at_version_1: Any) -> None:
    project = at_version_1
    with start(project) as handle, httpx.Client(base_url=handle.url, trust_env=False) as client:
        before = client.get("/version").json()
        assert before["version"] == "1" and before["alias"] == "champion"
        assert before["artifact_digest"].startswith("sha256:")
        assert before["fast_path"] == "compiled"
        ready = client.get("/ready").json()
        assert ready["ready"] is True and ready["artifact_digest"] == before["artifact_digest"]
        unchanged = client.post("/admin/reload", headers=AUTH)
        assert unchanged.status_code == 200
        assert unchanged.json()["served"]["champion"]["changed"] is False
        registry.set_alias(project, MODEL, "champion", "2")
        response = client.post("/admin/reload", headers=AUTH)
        assert response.status_code == 200, response.text
        served = response.json()["served"]["champion"]
        assert served["changed"] is True and served["previous"] == "1" and served["version"] == "2"
        assert client.get("/version").json()["version"] == "2"
        scored = client.post("/invocations", json={"dataframe_records": [one_row()]})
        assert scored.headers["x-model-version"] == "2"
        metrics = client.get("/metrics").text
        assert 'opsloop_model_loads_total{outcome="swapped",slot="champion"} 1.0' in metrics
        assert 'version="2"' in metrics and 'slot="champion"' in metrics
    swaps = [e for e in project.audit.entries() if e["action"] == "serve.swap"]
    assert swaps[-1]["before"] == {"version": "1"} and swaps[-1]["after"] == {"version": "2"}
    assert swaps[-1]["actor"].startswith("api:") and ADMIN not in str(swaps[-1])
    text = (project.home / "audit.jsonl").read_text()
    assert ADMIN not in text


def _swaps_to(project: Any, version: str) -> list[dict[str, Any]]:
    return [
        e
        for e in project.audit.entries()
        if e["action"] == "serve.swap" and e.get("after") == {"version": version}
    ]


def test_the_poller_follows_the_alias(at_version_1: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from opsloop.project import Project

    env = {"OPSLOOP_PLUGIN__FASTAPI__POLL_SECONDS": "0.2"}  # the project's environment
    project = Project.open(at_version_1.root, plugins=at_version_1.plugins, environ=env)
    try:
        with start(project) as handle, httpx.Client(base_url=handle.url, trust_env=False) as c:
            registry.set_alias(project, MODEL, "champion", "2")
            deadline = time.monotonic() + 20
            while c.get("/version").json()["version"] != "2":
                assert time.monotonic() < deadline, "the poller did not swap within 20 s"
                time.sleep(0.1)
            # the swap is served first and audited just after: wait for its entry too
            while not (swaps := _swaps_to(project, "2")):
                assert time.monotonic() < deadline, "the swap to version 2 was never audited"
                time.sleep(0.1)
            assert not swaps[-1]["actor"].startswith("api:")  # the server itself moved
    finally:
        project.close()


def test_twenty_swaps_under_concurrent_load_fail_no_request(at_version_1: Any) -> None:
    """8 clients post continuously while the champion moves 20 times: every answer is 200."""
    project = at_version_1
    store = registry.get_store(project)
    body = {"dataframe_records": [one_row()]}
    results: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()
    with start(project) as handle:

        def load() -> None:
            with httpx.Client(base_url=handle.url, trust_env=False, timeout=10) as client:
                while not stop.is_set():
                    try:
                        response = client.post("/invocations", json=body)
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                    else:
                        results[response.headers["x-model-version"]] += 1

        clients = [threading.Thread(target=load, daemon=True) for _ in range(8)]
        for thread in clients:
            thread.start()
        swaps = []
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=handle.url, trust_env=False, timeout=30) as admin:
            try:
                for i in range(20):
                    assert time.monotonic() < deadline, f"only {i} swaps in 60 s"
                    store.set_alias(MODEL, "champion", "2" if i % 2 == 0 else "1")
                    reloaded = admin.post("/admin/reload", headers=AUTH)
                    assert reloaded.status_code == 200, reloaded.text
                    swaps.append(reloaded.json()["served"]["champion"])
                    time.sleep(0.05)
            finally:
                stop.set()
                for thread in clients:
                    thread.join(15)
    assert failures == []
    assert [s["changed"] for s in swaps] == [True] * 20
    assert results["1"] > 20 and results["2"] > 20  # both versions answered under load
    assert sum(results.values()) > 200


def test_a_tampered_version_is_never_served(mlflow_registry: dict[str, Any]) -> None:
    from opsloop_mlflow.settings import local_path

    project = mlflow_registry["project"]
    store = registry.get_store(project)
    with start(project) as handle, httpx.Client(base_url=handle.url, trust_env=False) as client:
        folder = local_path(store.describe(store.resolve(MODEL, "2"))["artifacts"])
        assert folder is not None
        victim = next(p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "MLmodel")
        original = victim.read_bytes()
        victim.write_bytes(original + b"tampered")
        try:
            store.set_alias(MODEL, "champion", "2")  # moved outside opsloop's checks
            response = client.post("/admin/reload", headers=AUTH)
            assert response.status_code == 409, response.text
            assert "v2" in response.json()["detail"]
            assert client.get("/version").json()["version"] == "1"
            scored = client.post("/invocations", json={"dataframe_records": [one_row()]})
            assert scored.status_code == 200 and scored.headers["x-model-version"] == "1"
            metrics = client.get("/metrics").text
            assert 'opsloop_model_loads_total{outcome="failed",slot="champion"} 1.0' in metrics
        finally:
            victim.write_bytes(original)
            store.set_alias(MODEL, "champion", "1")
    refused = [e for e in project.audit.entries() if e["action"] == "serve.swap.refused"]
    assert refused and refused[-1]["after"] == {"version": "2"}


# ---------------------------------------------------------------------- admin
def test_admin_promote_and_rollback_move_the_alias_and_swap(at_version_1: Any) -> None:
    project = at_version_1
    with start(project) as handle, httpx.Client(base_url=handle.url, trust_env=False) as client:
        promoted = client.post("/admin/promote", json={"version": "2"}, headers=AUTH)
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["version"] == "2"
        assert promoted.json()["served"]["champion"]["version"] == "2"
        assert champion(project) == "2" and client.get("/version").json()["version"] == "2"
        rolled = client.post("/admin/rollback", json={"alias": "champion"}, headers=AUTH)
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["version"] == "1" and champion(project) == "1"
        assert client.get("/version").json()["version"] == "1"
        unknown = client.post("/admin/promote", json={"version": "99"}, headers=AUTH)
        assert unknown.status_code == 409 and "99" in unknown.json()["detail"]
        bad = client.post("/admin/promote", json={"version": "two"}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["fields"] == ["version"]
    actions = [(e["action"], e["actor"]) for e in project.audit.entries()]
    assert ("serve.admin.promote", "api:" + _token_id()) in actions
    assert ("serve.admin.rollback", "api:" + _token_id()) in actions
    assert any(a == "model.promote" for a, _ in actions)
    assert any(a == "model.rollback" for a, _ in actions)


def _token_id() -> str:
    from opsloop_fastapi.app import token_id

    return token_id(ADMIN)


def test_artifact_digest_comes_from_the_store_protocol() -> None:
    from opsloop_fastapi.follow import artifact_digest

    from opsloop.records import ModelVersionRef

    ref = ModelVersionRef(name="m", version="3", uri="models:/m/3", store="x")

    class Store:  # only the ModelStore protocol's provenance(), no vendor extras
        def __init__(self, artifacts: dict[str, str] | None, fail: bool = False) -> None:
            self.artifacts, self.fail = artifacts, fail

        def provenance(self, ref: ModelVersionRef) -> dict[str, object]:
            if self.fail:
                raise RuntimeError("registry down")
            return {"artifacts": self.artifacts}

    model = object()
    assert artifact_digest(Store({"digest": "sha256:ab"}), ref, model) == "sha256:ab"
    assert artifact_digest(Store({"manifest_sha256": "cd"}), ref, model) == "cd"
    assert artifact_digest(Store(None), ref, model) is None
    assert artifact_digest(Store({}, fail=True), ref, model) is None
    assert artifact_digest(object(), ref, model) is None

    class Carrying:
        artifact_digest = "sha256:own"

    assert artifact_digest(Store({"digest": "sha256:ab"}), ref, Carrying()) == "sha256:own"

"""Property-based fuzzing of the service's own OpenAPI document (schemathesis): never a 5xx.

Every operation of ``/openapi.json`` gets generated requests, valid and invalid ones, sent
in process to the ASGI app; admin operations are fuzzed with the right token too, so the
registry calls behind them are exercised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi_testkit import app_for, open_project
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

TOKEN = "fuzz-admin-token"


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = open_project(
        tmp_path_factory.mktemp("fuzz"), config="[plugin.fastapi]\nlog_flush_seconds = 0.05\n"
    )
    return app_for(project, admin_token=TOKEN, poll_seconds=0, max_body_bytes=200_000)


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_is_a_server_error(fuzz_schema: Any, mode: GenerationMode) -> None:
    """Every operation, 60 generated requests each (schemathesis's pytest loader needs an
    older pytest, so the cases are drawn from each operation's strategy here)."""
    seen: dict[str, set[int]] = {}
    for operation in operations(fuzz_schema):
        fuzz_operation(operation, mode, seen)
    assert len(seen) >= 10
    predict, invocations = seen["POST /v1/models/{name}/predict"], seen["POST /invocations"]
    if mode is GenerationMode.POSITIVE:  # valid bodies are scored
        assert 200 in predict and 200 in invocations, (predict, invocations)
    else:  # invalid ones are refused, and say why
        assert predict & {404, 422} and invocations & {400, 415}, (predict, invocations)


def fuzz_operation(operation: Any, mode: GenerationMode, seen: dict[str, set[int]]) -> None:
    admin = operation.path.startswith("/admin")
    headers = {"authorization": f"Bearer {TOKEN}"} if admin else None
    name = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=60,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers)
        seen.setdefault(name, set()).add(response.status_code)
        assert response.status_code < 500, (
            f"{case.method} {case.path} {case.body!r:.300} -> {response.status_code}: "
            f"{response.text[:500]}"
        )

    try:
        fuzz()
    except Unsatisfiable:  # nothing invalid to generate (an operation without inputs)
        assert mode is GenerationMode.NEGATIVE
        seen.setdefault(name, set())


def test_the_document_lists_every_operation(fuzz_schema: Any) -> None:
    found = {(op.method.upper(), op.path) for op in operations(fuzz_schema)}
    assert {
        ("POST", "/v1/models/{name}/predict"),
        ("POST", "/invocations"),
        ("POST", "/v1/feedback"),
        ("POST", "/admin/reload"),
        ("POST", "/admin/promote"),
        ("POST", "/admin/rollback"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/version"),
        ("GET", "/metrics"),
    } <= found


def test_artifacts_of_the_fuzz_run_stay_in_the_project(fuzz_app: Any) -> None:
    home = Path(fuzz_app.state.opsloop.project.home)
    assert home.is_dir()

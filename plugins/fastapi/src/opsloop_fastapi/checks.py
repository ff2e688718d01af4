"""``opsloop doctor`` checks of the serving plugin: its packages and its settings."""

from __future__ import annotations

from importlib.util import find_spec
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
from opsloop.interfaces import CheckResult

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "fastapi"


def checks(project: Project) -> list[CheckResult]:
    """Every check as a CheckResult; never raises."""
    results: list[CheckResult] = []
    for module in ("fastapi", "uvicorn", "prometheus_client", "pyarrow", "duckdb", "orjson"):
        ok = find_spec(module) is not None
        detail = "" if ok else "pip install opsloop-fastapi"
        results.append(CheckResult(f"{module} installed", ok, detail, PLUGIN))
    try:
        settings = project.settings(PLUGIN)
        results.append(CheckResult("fastapi settings", True, settings.log_format, PLUGIN))
    except OpsloopError as exc:  # doctor reports, never raises
        results.append(CheckResult("fastapi settings", False, str(exc), PLUGIN))
    return results

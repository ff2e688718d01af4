"""``opsloop doctor`` checks of the dlt plugin: dlt imports, settings parse, paths writable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import one_line
from opsloop.interfaces import CheckResult

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "dlt"


def checks(project: Project) -> list[CheckResult]:
    """Every check; none raises."""
    return [_dlt_imports(), _settings(project), _writable(project)]


def _dlt_imports() -> CheckResult:
    from opsloop_dlt import _env

    _env.configure_dlt()
    try:
        import dlt
        import duckdb
    except Exception as exc:  # noqa: BLE001 - report, never raise
        return CheckResult("dlt importable", False, one_line(exc), PLUGIN)
    from dlt.common.configuration.resolve import resolve_configuration
    from dlt.common.configuration.specs import RuntimeConfiguration

    telemetry = resolve_configuration(RuntimeConfiguration()).dlthub_telemetry
    detail = f"dlt {dlt.__version__}, duckdb {duckdb.__version__}, telemetry " + (
        "on" if telemetry else "off"
    )
    return CheckResult("dlt importable", not telemetry, detail, PLUGIN)


def _settings(project: Project) -> CheckResult:
    from opsloop.errors import OpsloopError

    try:
        settings = project.settings(PLUGIN)
    except OpsloopError as exc:
        return CheckResult("dlt settings", False, str(exc), PLUGIN)
    return CheckResult("dlt settings", True, f"{len(settings.sources)} source(s) declared", PLUGIN)


def _writable(project: Project) -> CheckResult:
    try:
        warehouse = project.warehouse_path
        folder = warehouse.parent
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".opsloop-dlt-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
        if warehouse.exists() and not os.access(warehouse, os.W_OK):
            return CheckResult("warehouse writable", False, f"{warehouse} is not writable", PLUGIN)
        pipelines: Path = project.path("dlt", "pipelines")
        pipelines.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return CheckResult("warehouse writable", False, f"{exc.strerror}: {exc.filename}", PLUGIN)
    return CheckResult("warehouse writable", True, str(warehouse), PLUGIN)

"""`opsloop doctor` checks: evidently imports with the installed pandas, telemetry is off."""

from __future__ import annotations

import os
import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from opsloop.interfaces import CheckResult
from opsloop_evidently.offline import DO_NOT_TRACK_ENV, disable_telemetry, import_hint

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "evidently"


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def evidently_imports() -> CheckResult:
    """Import evidently for real (it takes seconds) and say which versions were tried."""
    name = "evidently imports"
    evidently_version, pandas_version = _version("evidently"), _version("pandas")
    if not evidently_version:
        return CheckResult(name, False, "evidently is not installed: pip install evidently", PLUGIN)
    if pandas_version and int(pandas_version.split(".")[0]) >= 3:
        return CheckResult(
            name,
            False,
            f"evidently {evidently_version} needs pandas<3, found pandas {pandas_version}: "
            "pip install 'pandas<3'",
            PLUGIN,
        )
    disable_telemetry()
    start = time.perf_counter()
    try:
        import evidently  # noqa: F401
        from evidently import Report  # noqa: F401
        from evidently.presets import DataDriftPreset  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return CheckResult(name, False, import_hint(exc), PLUGIN)
    took = time.perf_counter() - start
    return CheckResult(
        name,
        True,
        f"evidently {evidently_version} with pandas {pandas_version} ({took:.1f} s)",
        PLUGIN,
    )


def telemetry_off() -> CheckResult:
    """Evidently's usage telemetry is opted out through DO_NOT_TRACK."""
    disable_telemetry()
    value = os.environ.get(DO_NOT_TRACK_ENV)
    return CheckResult(
        "evidently telemetry off", value is not None, f"{DO_NOT_TRACK_ENV}={value}", PLUGIN
    )


def checks(project: Project) -> list[CheckResult]:
    """`opsloop doctor`: Evidently imports offline and its telemetry is off."""
    return [evidently_imports(), telemetry_off()]

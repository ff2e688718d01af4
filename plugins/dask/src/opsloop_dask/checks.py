"""`opsloop doctor` check: where Dask work would run, and that the scheduler answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.errors import one_line
from opsloop.interfaces import CheckResult

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "dask"


def checks(project: Project) -> list[CheckResult]:
    """One finding: off, a LocalCluster per run, or a scheduler reachable with N workers."""
    name = "dask cluster"
    try:
        settings = project.settings(PLUGIN)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return [CheckResult(name, False, one_line(exc), PLUGIN)]
    if not settings.active:
        return [CheckResult(name, True, "off: batch scoring and profiles run in-process", PLUGIN)]
    if not settings.address:
        detail = (
            f"a LocalCluster per run: {settings.n_workers} workers x "
            f"{settings.threads_per_worker} threads, memory {settings.memory_limit} each"
        )
        return [CheckResult(name, True, detail, PLUGIN)]
    from distributed import Client

    try:
        with Client(
            settings.address, timeout=settings.connect_timeout_seconds, set_as_default=False
        ) as client:
            workers = len(client.scheduler_info().get("workers", {}))
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return [CheckResult(name, False, f"{settings.address}: {one_line(exc)}", PLUGIN)]
    return [CheckResult(name, True, f"{settings.address}: {workers} workers", PLUGIN)]

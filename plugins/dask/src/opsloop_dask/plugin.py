"""The opsloop entry point of opsloop-dask: hook implementations only, nothing heavy.

Dask is imported when a run starts, never here, so ``opsloop --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    from opsloop.project import Project
    from opsloop_dask.engine import DaskEngine


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="dask",
        stage="serve",
        summary="scale-out: `opsloop batch score` and `opsloop monitor profile` over "
        "partitioned Parquet on a Dask cluster (a LocalCluster, or [plugin.dask] address)",
        config_model="opsloop_dask.settings:Settings",
        vendor_packages=("dask", "distributed"),
    )


@hookimpl
def scale_out(project: Project) -> DaskEngine | None:
    settings = project.settings("dask")
    if not settings.active:
        return None
    from opsloop_dask.engine import DaskEngine

    return DaskEngine(settings)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_dask.checks import checks

    return checks(project)

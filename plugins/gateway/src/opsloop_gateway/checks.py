"""``opsloop doctor`` checks of the gateway: callers have keys, the upstream is set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.interfaces import CheckResult

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "gateway"


def checks(project: Project) -> list[CheckResult]:
    """Every check as a CheckResult; never raises (no network: the upstream is not called)."""
    from opsloop.errors import one_line

    try:
        from opsloop_gateway.keys import load_keys

        settings = project.settings(PLUGIN)
        keys = load_keys(settings.keys, project.environ)
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        return [CheckResult("gateway keys", False, one_line(exc), PLUGIN)]
    detail = f"{len(keys)} caller key(s); upstream {settings.upstream}"
    return [
        CheckResult(
            "gateway keys",
            bool(keys),
            detail if keys else "no caller keys: add [[plugin.gateway.keys]] (opsloop guard key)",
            PLUGIN,
        )
    ]

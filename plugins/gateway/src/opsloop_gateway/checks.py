"""``opsloop doctor`` checks of the gateway: its caller keys can be read (a key from a
variable that is not set fails); a project without the gateway set up passes."""

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
    if not keys:  # installed but not set up: only `opsloop guard serve` needs keys
        detail = "not set up: opsloop guard serve needs [[plugin.gateway.keys]] (opsloop guard key)"
    else:
        detail = f"{len(keys)} caller key(s); upstream {settings.upstream}"
    return [CheckResult("gateway keys", True, detail, PLUGIN)]

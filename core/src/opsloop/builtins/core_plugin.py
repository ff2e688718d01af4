"""Built-in plugin: the core's own self-checks."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    from opsloop.project import Project


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(name="core", stage="core", summary="config, records, audit log")


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    results = [
        CheckResult("python", sys.version_info >= (3, 11), sys.version.split()[0], "core"),
        CheckResult("config", True, project.config.source, "core"),
    ]
    try:
        project.home.mkdir(parents=True, exist_ok=True)
        probe = project.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        results.append(CheckResult("project home writable", True, str(project.home), "core"))
    except OSError as exc:
        results.append(CheckResult("project home writable", False, str(exc), "core"))
    verdict = project.audit.verify()
    results.append(
        CheckResult(
            "audit log chain",
            verdict.ok,
            f"{verdict.entries} entries"
            + ("" if verdict.ok else f"; entry {verdict.bad_seq}: {verdict.reason}"),
            "core",
        )
    )
    return results

"""Built-in plugin (essential): the core's own commands and self-checks."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.errors import OpsloopError
from opsloop.interfaces import CheckResult, PluginInfo
from opsloop.registrations import NAMED_HOOKS

if TYPE_CHECKING:
    import typer

    from opsloop.project import Project


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="core",
        stage="core",
        summary="config, records, audit log; plugins, doctor, init, demo, audit commands "
        "(essential: cannot be disabled)",
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli import commands_audit, commands_core

    commands_core.register_cli(cli)
    commands_audit.register_cli(cli)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    results = [
        CheckResult("python", sys.version_info >= (3, 11), sys.version.split()[0], "core"),
    ]
    if project.detached:
        # No project here: report it, and write nothing (no home, no audit log).
        return [
            *results,
            CheckResult(
                "project",
                False,
                f"no opsloop.toml in {project.root} or a parent folder; create one with "
                "`opsloop init`, or pass --project",
                "core",
            ),
        ]
    results.append(CheckResult("config", True, project.config.source, "core"))
    for plugin, error in project.settings_errors().items():
        results.append(CheckResult(f"settings of plugin {plugin}", False, error, "core"))
    for hook in NAMED_HOOKS:
        try:
            shadowed = project.shadowed(hook)
        except OpsloopError:
            continue  # a plugin's own check or its settings line reports it
        for shadow in shadowed:
            results.append(CheckResult("registration shadowed", True, str(shadow), "core"))
    try:
        project.home.mkdir(parents=True, exist_ok=True)
        probe = project.home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        results.append(CheckResult("project home writable", True, str(project.home), "core"))
    except OSError as exc:
        results.append(CheckResult("project home writable", False, str(exc), "core"))
    mode = project.home.stat().st_mode & 0o777
    shared = project.config.project.share_group
    loose = mode & (0o007 if shared else 0o077)
    results.append(
        CheckResult(
            "project home private",
            not loose,
            f"{project.home} is {mode:o}"
            + (
                f"; others can read it: chmod {'2770' if shared else '700'} {project.home}"
                if loose
                else ""
            ),
            "core",
        )
    )
    verdict = project.verify_audit()
    results.append(
        CheckResult(
            "audit log chain",
            verdict.ok,
            verdict.describe() + "".join(f"; warning: {w}" for w in verdict.warnings),
            "core",
        )
    )
    triggers_ok = not project.records.triggers_were_missing
    results.append(
        CheckResult(
            "records append-only",
            triggers_ok,
            "UPDATE and DELETE refused by triggers"
            if triggers_ok
            else "the append-only triggers of the records store were missing (dropped) and "
            "were recreated; `opsloop audit verify` checks every row against the audit log",
            "core",
        )
    )
    return results

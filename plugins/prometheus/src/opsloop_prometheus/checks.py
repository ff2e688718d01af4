"""`opsloop doctor` checks: the SLO settings make valid rules; promtool, if installed, agrees."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.interfaces import CheckResult

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "prometheus"


def rules_check(project: Project) -> CheckResult:
    """The rules generate; with promtool on PATH, `promtool check rules` accepts them."""
    from opsloop.errors import one_line
    from opsloop_prometheus.rules import build_rules, render_rules

    name = "prometheus rules"
    try:
        settings = project.settings(PLUGIN)
        text = render_rules(settings)
    except Exception as exc:  # noqa: BLE001 - doctor reports, never raises
        return CheckResult(name, False, one_line(exc), PLUGIN)
    count = sum(len(g["rules"]) for g in build_rules(settings)["groups"])
    slos = f"{len(settings.slo)} SLO entr{'y' if len(settings.slo) == 1 else 'ies'}"
    promtool = shutil.which("promtool")
    if promtool is None:
        return CheckResult(name, True, f"{count} rules for {slos}; promtool not found", PLUGIN)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "opsloop.rules.yml"
        path.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run(
                [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return CheckResult(name, False, f"promtool did not run: {exc}", PLUGIN)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return CheckResult(
            name, False, f"promtool: {lines[-1] if lines else done.returncode}", PLUGIN
        )
    return CheckResult(name, True, f"{count} rules for {slos}; promtool agrees", PLUGIN)


def checks(project: Project) -> list[CheckResult]:
    """`opsloop doctor`: the rules this project's settings make are valid."""
    return [rules_check(project)]

"""The built-in job kinds: ``runbook`` (runbooks and reports, through the strict runbook
engine) and ``monitor`` (one model's check, or one round over every served model).

A schedule stores no secret: a runbook's secret parameter is scheduled as ``env:NAME`` and
read from the scheduler's environment when the job runs.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, ParameterError
from opsloop.interfaces import JobKind, JobOutcome, ScheduledJob
from opsloop.names import safe_name

if TYPE_CHECKING:
    from opsloop.project import Project

#: A runbook that declares this parameter is given the run's due time (ISO 8601 UTC).
SCHEDULED_FOR = "scheduled_for"
#: How a secret parameter is scheduled: the variable it is read from at run time.
ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
#: The variable the Airflow export sets to a run's due time (see opsloop.schedule.airflow).
SLOT_ENV = "OPSLOOP_SCHEDULED_FOR"
_PLACEHOLDER: dict[str, Any] = {"str": "x", "int": 0, "float": 0.0, "bool": False,
                                "list": [], "dict": {}}  # fmt: skip


# ----------------------------------------------------------------------------- runbook
def _runbook_check(project: Project, target: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The runbook exists, its parameters have the declared names and types, the required
    ones are given (those opsloop fills at run time aside), and secrets are env: refs."""
    from opsloop.runbooks import coerce_parameters, get_runbook, inspect_parameters

    spec = get_runbook(project, target)
    declared = inspect_parameters(spec)
    secrets: dict[str, str] = {}
    plain: dict[str, Any] = {}
    for name, value in parameters.items():
        param = declared.get(name)
        if param is not None and param.secret:
            if not (isinstance(value, str) and ENV_REF.fullmatch(value)):
                raise ParameterError(
                    f"runbook '{target}': parameter '{name}' is secret and a schedule stores "
                    f"no secret; pass it as {name}=env:VARIABLE, read from the scheduler's "
                    "environment when the job runs"
                )
            secrets[name] = value
        else:
            plain[name] = value
    probe = dict(plain)
    for name in secrets:
        probe[name] = _PLACEHOLDER.get(declared[name].type, "x")
    if "project_dir" in declared and "project_dir" not in probe:
        probe["project_dir"] = str(project.root)
    if SCHEDULED_FOR in declared and SCHEDULED_FOR not in probe:
        probe[SCHEDULED_FOR] = "2000-01-01T00:00:00+00:00"
    coerced = coerce_parameters(spec, probe)
    return {**{name: coerced[name] for name in plain}, **secrets}


def _runbook_run(project: Project, job: ScheduledJob) -> JobOutcome:
    from opsloop.runbooks import get_runbook, inspect_parameters, run_runbook
    from opsloop.schedule.cron import slot_text

    declared = inspect_parameters(get_runbook(project, job.target))
    values: dict[str, Any] = {}
    for name, value in job.parameters.items():
        ref = ENV_REF.fullmatch(value) if isinstance(value, str) else None
        param = declared.get(name)
        if ref and param is not None and param.secret:
            variable = ref.group(1)
            found = project.environ.get(variable, os.environ.get(variable))
            if found is None:
                raise OpsloopError(
                    f"secret parameter '{name}' reads ${variable}, which is not set in the "
                    "scheduler's environment"
                )
            values[name] = found
        else:
            values[name] = value
    if SCHEDULED_FOR in declared and SCHEDULED_FOR not in values:
        values[SCHEDULED_FOR] = slot_text(job.slot)
    run = run_runbook(project, job.target, values)
    summary = str(run.result.get("summary") or f"{run.status} -> {run.output_path}")
    return JobOutcome(
        ok=run.status == "succeeded", summary=summary, error=run.error, record_id=run.id
    )


def _argument(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _runbook_command(project: Project, target: str, parameters: dict[str, Any]) -> list[str]:
    from opsloop.runbooks import get_runbook, inspect_parameters

    args = ["runbook", "run", target]
    for name, value in parameters.items():
        ref = ENV_REF.fullmatch(value) if isinstance(value, str) else None
        args += ["-P", f"{name}=${{{ref.group(1)}}}" if ref else f"{name}={_argument(value)}"]
    if SCHEDULED_FOR in inspect_parameters(get_runbook(project, target)):
        args += ["-P", f"{SCHEDULED_FOR}=${{{SLOT_ENV}}}"]
    return args


RUNBOOK = JobKind(
    name="runbook",
    summary="run a runbook or report notebook (target: its name; -P its parameters)",
    run=_runbook_run,
    check=_runbook_check,
    command=_runbook_command,
)


# ----------------------------------------------------------------------------- monitor
def _monitor_check(project: Project, target: str, parameters: dict[str, Any]) -> dict[str, Any]:
    from opsloop.durations import parse_duration

    if target == "*":
        if parameters:
            raise ParameterError(
                "monitor:* (every served model) takes no parameters; it checks the "
                "[monitor] window of each model"
            )
        return {}
    safe_name(target, "model name")
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if name == "window":
            try:
                parse_duration(str(value))
            except ValueError as exc:
                raise ParameterError(f"monitor parameter window: {exc}") from None
            out[name] = str(value)
        elif name == "rows":
            try:
                rows = int(str(value))
            except ValueError:
                rows = 0
            if rows <= 0:
                raise ParameterError(
                    f"monitor parameter rows must be a positive number, got {value!r}"
                )
            out[name] = rows
        else:
            raise ParameterError(
                f"monitor jobs take the parameters window (e.g. 1h) and rows (e.g. 5000), "
                f"not '{name}'"
            )
    if "window" in out and "rows" in out:
        raise ParameterError("monitor parameters window and rows exclude each other; pass one")
    return out


def _monitor_run(project: Project, job: ScheduledJob) -> JobOutcome:
    from opsloop.watch import Findings, check_model, watch

    if job.target == "*":
        found: list[Findings] = []
        errors: list[str] = []

        def report(model: str, findings: Findings | None, error: str) -> None:
            if findings is not None:
                found.append(findings)
            else:
                errors.append(f"{model or 'watch'}: {error}")

        watch(project, interval=1.0, once=True, report=report)
        flagged = [f for f in found if f.signals]
        summary = f"{len(found)} model(s) checked, {len(flagged)} with findings"
        if errors:
            return JobOutcome(ok=False, summary=summary, error="; ".join(errors))
        first = next((s.id for f in flagged for s in f.signals), None)
        return JobOutcome(ok=True, summary=summary, record_id=first)
    params = job.parameters
    findings = check_model(
        project,
        job.target,
        window=params.get("window"),
        rows=int(params["rows"]) if params.get("rows") else None,
    )
    if findings.skipped:
        summary = f"{findings.model} v{findings.version}: skipped ({findings.skipped})"
    else:
        n = len(findings.signals)
        summary = (
            f"{findings.model} v{findings.version} ({findings.window}, {findings.rows} rows): "
        )
        summary += f"{n} finding(s)" if n else "nothing found"
    record = findings.signals[0].id if findings.signals else None
    return JobOutcome(ok=True, summary=summary, record_id=record)


def _monitor_command(project: Project, target: str, parameters: dict[str, Any]) -> list[str]:
    if target == "*":
        return ["monitor", "watch", "--once"]
    args = ["monitor", "check", target]
    if parameters.get("window"):
        args += ["--window", str(parameters["window"])]
    if parameters.get("rows"):
        args += ["--rows", str(parameters["rows"])]
    return args


MONITOR = JobKind(
    name="monitor",
    summary="check a served model's traffic (target: the model) or every served model (*)",
    run=_monitor_run,
    check=_monitor_check,
    command=_monitor_command,
)

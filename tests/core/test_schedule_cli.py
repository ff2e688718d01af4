"""Schedules through real processes: two ``opsloop schedule run-due`` at once run each due
slot exactly once; ``opsloop scheduler`` stops cleanly on SIGTERM; the CLI's one-line
errors; a scheduled runbook (secret from the environment, due time passed in); and the
Airflow export, checked against a stand-in ``airflow`` module whose commands are run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.project import Project
from opsloop.records import RunbookRun, ScheduleRun
from opsloop.schedule import add_schedule, run_due
from opsloop.schedule.airflow import bash_quote, export
from opsloop.schedule.cron import Cron
from opsloop.schedule.engine import claim_key, list_schedules

OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]

NOTES_PLUGIN = """
import os
import time
from pathlib import Path

from opsloop import hookimpl
from opsloop.interfaces import JobKind, JobOutcome


def _run(project, job):
    if job.target == "fail":
        return JobOutcome(ok=False, error="it failed on purpose")
    ready = Path(project.root, "ready")
    deadline = time.time() + 30
    while ready.is_dir() and len(list(ready.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.01)  # both run-due processes are up before any job ends
    line = f"{job.schedule} {job.slot.isoformat()} {os.getpid()}\\n"
    fd = os.open(Path(project.root, "ran.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, line.encode())
    os.close(fd)
    time.sleep(0.02)
    return JobOutcome(ok=True, summary="noted")


@hookimpl
def startup(project):
    if project.environ.get("NOTES_BARRIER"):
        ready = Path(project.root, "ready")
        ready.mkdir(exist_ok=True)
        (ready / str(os.getpid())).touch()


@hookimpl
def register_job_kinds(project):
    return [JobKind(name="note", summary="append a line to ran.txt", run=_run)]
"""


def make_root(tmp_path: Path, extra: str = "") -> Path:
    root = tmp_path / "proj"
    (root / "plugins").mkdir(parents=True)
    (root / "plugins" / "notes.py").write_text(NOTES_PLUGIN, encoding="utf-8")
    (root / "opsloop.toml").write_text(
        f'[project]\nname = "sched"\n\n[plugins]\npaths = ["plugins"]\n{extra}', encoding="utf-8"
    )
    return root


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "OPSLOOP_PLUGINS": "notes", **extra}


def open_project(root: Path) -> Project:
    return Project.open(root, environ=env())


def opsloop(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OPSLOOP, "--project", str(root), *args],
        capture_output=True,
        text=True,
        env=env(**extra),
        timeout=120,
    )


# ----------------------------------------------------------------------------- locking
def test_two_run_due_processes_run_each_slot_exactly_once(tmp_path: Path) -> None:
    root = make_root(tmp_path, "\n[plugin.schedule]\nmax_catchup = 40\n")
    project = open_project(root)
    past = datetime.now(UTC) - timedelta(days=30)
    add_schedule(project, "hourly", cron="0 * * * *", job="note:h", catchup=True, now=past)
    add_schedule(project, "minutely", cron="* * * * *", job="note:m", now=past)
    start = datetime.now(UTC)
    procs = [
        subprocess.Popen(
            [*OPSLOOP, "--project", str(root), "schedule", "run-due"],
            env=env(NOTES_BARRIER="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    end = datetime.now(UTC)
    assert [p.returncode for p in procs] == [0, 0], outputs
    lines = (root / "ran.txt").read_text().split()
    ran = [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    per_slot = Counter((name, slot) for name, slot, _ in ran)
    assert max(per_slot.values()) == 1, per_slot.most_common(3)  # no slot ran twice
    hourly = sorted(slot for name, slot in per_slot if name == "hourly")
    # the 40 newest hourly slots (41 if an hour began while the test ran), each once
    cron = Cron("0 * * * *")
    newest = cron.newest(end, start - timedelta(days=3), 41)
    expected = [s.isoformat() for s in newest]
    assert len(hourly) in (40, 41) and hourly == expected[-len(hourly) :]
    minutely = [slot for name, slot in per_slot if name == "minutely"]
    assert 1 <= len(minutely) <= 2  # missed slots run once (twice only if a minute began)
    # both processes took part: the claims were contended, not taken in turn
    assert len({pid for _, _, pid in ran}) == 2
    runs = open_project(root).records.list(ScheduleRun)
    assert sorted((r.schedule, datetime.fromisoformat(r.slot).isoformat()) for r in runs) == sorted(
        per_slot
    )
    claims = project.records.claims(claim_key(list_schedules(project)[0]))
    assert len({c.owner for c in claims}) == 2 and len(claims) == len(hourly)


# ----------------------------------------------------------------------------- scheduler
def test_scheduler_runs_what_is_due_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    project = open_project(root)
    add_schedule(
        project, "daily", cron="@daily", job="note:d", now=datetime.now(UTC) - timedelta(days=2)
    )
    proc = subprocess.Popen(
        [*OPSLOOP, "--project", str(root), "scheduler", "--poll", "1s"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    seen = ""
    assert proc.stdout is not None
    while "next: daily" not in seen and time.monotonic() < deadline:
        seen += proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    seen += out
    assert proc.returncode == 0, err
    assert "▶ daily note:d for" in seen and "(1 missed slot(s) skipped)" in seen
    assert "✓ daily succeeded" in seen
    assert "scheduler stopped: 1 run(s), 0 failed" in seen
    assert "stopping after the running job" in err
    (run,) = open_project(root).records.list(ScheduleRun)
    assert run.status == "succeeded" and run.missed == 1


# ----------------------------------------------------------------------------- CLI
def test_cli_add_list_runs_remove_and_one_line_errors(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    bad = opsloop(root, "schedule", "add", "a/b", "--cron", "@daily", "--job", "note:x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "schedule name 'a/b' cannot be used as a file name" in bad.stderr
    bad = opsloop(root, "schedule", "add", "x", "--cron", "* * 1", "--job", "note:x")
    assert bad.returncode == 2 and "has 3 field(s); write five fields" in bad.stderr
    bad = opsloop(root, "schedule", "add", "x", "--cron", "@daily", "--job", "note:x",
                  "--tz", "Europe/Berln")  # fmt: skip
    assert bad.returncode == 2 and "unknown timezone 'Europe/Berln'" in bad.stderr

    added = opsloop(root, "schedule", "add", "ok", "--cron", "0 7 * * 1-5", "--job",
                    "note:fail", "--tz", "Europe/Berlin")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "schedule ok: note:fail at '0 7 * * 1-5' (At 07:00 on Monday through Friday)" in (
        added.stdout
    )
    listed = json.loads(opsloop(root, "schedule", "list", "--json").stdout)
    assert [(s["name"], s["timezone"], s["job"]) for s in listed] == [
        ("ok", "Europe/Berlin", "note")
    ]
    assert listed[0]["next_slot"] and listed[0]["last_run"] is None
    assert "ok" in opsloop(root, "schedule", "list").stdout

    ran = opsloop(root, "schedule", "run", "ok")  # by hand: the job fails -> exit 1
    assert ran.returncode == 1 and "✗ ok failed" in ran.stdout
    assert "it failed on purpose" in ran.stdout
    runs = json.loads(opsloop(root, "schedule", "runs", "--json").stdout)
    assert [(r["schedule"], r["status"], r["trigger"]) for r in runs] == [
        ("ok", "failed", "manual")
    ]
    assert opsloop(root, "schedule", "run-due").stdout.strip() == "nothing due"
    gone = opsloop(root, "schedule", "remove", "ok")
    assert (
        gone.returncode == 0 and opsloop(root, "schedule", "list", "--json").stdout.strip() == "[]"
    )
    again = opsloop(root, "schedule", "remove", "ok")
    assert again.returncode == 2 and "no schedule named 'ok'" in again.stderr
    audit = [json.loads(line)["action"] for line in (root / ".opsloop" / "audit.jsonl").open()]
    assert [a for a in audit if a.startswith("schedule.")] == [
        "schedule.add", "schedule.run", "schedule.remove",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- runbooks
RUNBOOK_CELLS = [
    'scheduled_for: str = ""\nmodel: str = "m"\napi_token: str = ""\n',
    "from opsloop.runbooks import runbook_result\n"
    "runbook_result(summary=f'{model} at {scheduled_for} token {len(api_token)}')",
]


def write_runbook(root: Path, name: str, params: str, *cells: str) -> Path:
    def cell(source: str, tags: list[str] | None = None) -> dict[str, Any]:
        return {"cell_type": "code", "execution_count": None, "outputs": [],
                "metadata": {"tags": tags or []}, "source": source}  # fmt: skip

    nb = {
        "cells": [cell(params, ["parameters"]), *(cell(c) for c in cells)],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }  # fmt: skip
    path = root / "notebooks" / "runbooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.mark.slow  # runs a notebook
def test_scheduled_runbook_gets_its_slot_and_secret_and_links_the_run(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    write_runbook(root, "report", *RUNBOOK_CELLS)
    token = "tok-" + "x9" * 12
    project = Project.open(root, environ=env(REPORT_TOKEN=token))
    t0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    params = {"model": "iris", "api_token": "env:REPORT_TOKEN"}
    add_schedule(project, "weekly", cron="0 8 * * 1", timezone="Europe/Berlin",
                 job="runbook:report", parameters=params, now=t0)  # fmt: skip

    class Clock:
        def now(self) -> datetime:
            return t0 + timedelta(hours=2)

        def sleep(self, seconds: float, stop: Any) -> None:
            raise AssertionError("run_due never sleeps")

    (run,) = run_due(project, clock=Clock())
    assert run.status == "succeeded", run.error
    assert run.slot == "2026-03-02T07:00:00+00:00"  # 08:00 in Berlin (CET)
    book = project.records.get(run.record_id or "")
    assert isinstance(book, RunbookRun) and book.runbook == "report"
    assert book.parameters["scheduled_for"] == run.slot
    assert run.summary == f"iris at {run.slot} token {len(token)}"
    home = b"".join(p.read_bytes() for p in (root / ".opsloop").rglob("*") if p.is_file())
    assert token.encode() not in home  # the secret reached the kernel, never the disk

    # the same schedule without the variable in the environment: a failed run, said why
    bare = Project.open(root, environ=env())
    add_schedule(bare, "weekly", cron="0 8 * * 1", job="runbook:report", replace=True,
                 parameters={"api_token": "env:MISSING_TOKEN"}, now=t0)  # fmt: skip
    (failed,) = run_due(bare, clock=Clock())
    assert failed.status == "failed"
    assert failed.error == (
        "secret parameter 'api_token' reads $MISSING_TOKEN, which is not set in the "
        "scheduler's environment"
    )


# ----------------------------------------------------------------------------- Airflow
class FakeAirflow:
    """Stand-ins for ``airflow``, its BashOperator and ``pendulum`` that record what the
    generated DAG file constructs."""

    def __init__(self, provider: bool) -> None:
        self.dags: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        recorder = self

        class DAG:
            def __init__(self, **kwargs: Any) -> None:
                self.kwargs = kwargs
                recorder.dags.append(kwargs)

            def __enter__(self) -> DAG:
                recorder.current = self.kwargs["dag_id"]
                return self

            def __exit__(self, *exc: object) -> None:
                recorder.current = None

        class BashOperator:
            def __init__(self, **kwargs: Any) -> None:
                recorder.tasks.append({**kwargs, "dag_id": recorder.current})

        def pdatetime(year: int, month: int, day: int, tz: str) -> tuple[int, int, int, str]:
            return (year, month, day, tz)

        self.current: str | None = None
        airflow = types.ModuleType("airflow")
        airflow.DAG = DAG  # type: ignore[attr-defined]
        bash = types.ModuleType("bash")
        bash.BashOperator = BashOperator  # type: ignore[attr-defined]
        pendulum = types.ModuleType("pendulum")
        pendulum.datetime = pdatetime  # type: ignore[attr-defined]
        where = (
            "airflow.providers.standard.operators.bash" if provider else "airflow.operators.bash"
        )
        self.modules = {"airflow": airflow, where: bash, "pendulum": pendulum}


def run_dag_file(text: str, provider: bool, monkeypatch: pytest.MonkeyPatch) -> FakeAirflow:
    fake = FakeAirflow(provider)
    for name in [m for m in sys.modules if m == "airflow" or m.startswith("airflow.")]:
        monkeypatch.delitem(sys.modules, name)
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    exec(compile(text, "opsloop_dags.py", "exec"), {"__name__": "opsloop_dags"})
    return fake


def test_bash_quote_keeps_environment_references_only() -> None:
    assert bash_quote("model=iris") == "model=iris"
    assert bash_quote("a b'c") == "'a b'\"'\"'c'"
    assert bash_quote("api_token=${TOKEN}") == 'api_token="${TOKEN}"'
    assert bash_quote("x=$(rm -rf /)") == "'x=$(rm -rf /)'"


@pytest.mark.slow  # runs a notebook through the exported command
@pytest.mark.parametrize("provider", [True, False], ids=["airflow3", "airflow2"])
def test_airflow_export_builds_one_dag_per_schedule_whose_commands_run(
    tmp_path: Path, provider: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_root(tmp_path)
    write_runbook(root, "report", *RUNBOOK_CELLS)
    project = open_project(root)
    t0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    add_schedule(project, "weekly", cron="0 8 * * 1", timezone="Europe/Berlin",
                 job="runbook:report", parameters={"model": "iris it's",
                                                   "api_token": "env:REPORT_TOKEN"},
                 now=t0)  # fmt: skip
    add_schedule(project, "drift", cron="@hourly", job="monitor:iris",
                 parameters={"window": "2h"}, catchup=True, now=t0)  # fmt: skip
    add_schedule(project, "notes", cron="*/5 * * * *", job="note:x", now=t0)
    opsloop_bin = str(Path(sys.executable).parent / "opsloop")
    out = tmp_path / "dags" / "opsloop_dags.py"
    text = export(project, out, opsloop=opsloop_bin)
    assert out.read_text() == text
    fake = run_dag_file(text, provider, monkeypatch)

    dags = {d["dag_id"]: d for d in fake.dags}
    assert set(dags) == {"opsloop_sched_weekly", "opsloop_sched_drift", "opsloop_sched_notes"}
    weekly = dags["opsloop_sched_weekly"]
    assert weekly["schedule"] == "0 8 * * 1"
    assert weekly["start_date"] == (2026, 3, 2, "Europe/Berlin")
    assert (weekly["catchup"], weekly["max_active_runs"]) == (False, 1)
    assert dags["opsloop_sched_drift"]["schedule"] == "@hourly"
    assert dags["opsloop_sched_drift"]["catchup"] is True
    tasks = {t["dag_id"]: t for t in fake.tasks}
    assert len(fake.tasks) == 3
    prefix = f"{opsloop_bin} --project {root}"
    assert (
        tasks["opsloop_sched_drift"]["bash_command"] == f"{prefix} monitor check iris --window 2h"
    )
    # a kind without a CLI command of its own runs through `opsloop schedule run`
    assert tasks["opsloop_sched_notes"]["bash_command"] == f"{prefix} schedule run notes"
    report = tasks["opsloop_sched_weekly"]
    assert report["bash_command"] == (
        f'{prefix} runbook run report -P api_token="${{REPORT_TOKEN}}" '
        "-P 'model=iris it'\"'\"'s' -P scheduled_for=\"${OPSLOOP_SCHEDULED_FOR}\""
    )
    assert report["env"] == {"OPSLOOP_SCHEDULED_FOR": "{{ data_interval_end.isoformat() }}"}
    assert report["append_env"] is True
    assert "REPORT_TOKEN" not in text.replace("${REPORT_TOKEN}", "")  # no secret value, a ref

    if not provider:
        return  # the commands are the same; run them once
    # the task's command, run as Airflow's BashOperator runs it (bash, env appended)
    token = "tok-" + "q7" * 12
    slot = "2026-03-09T07:00:00+00:00"
    done = subprocess.run(
        ["bash", "-c", report["bash_command"]],
        env=env(REPORT_TOKEN=token, OPSLOOP_SCHEDULED_FOR=slot),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (book,) = open_project(root).records.list(RunbookRun)
    assert book.parameters["scheduled_for"] == slot and book.parameters["model"] == "iris it's"
    assert book.result["summary"] == f"iris it's at {slot} token {len(token)}"


def test_airflow_export_cli_writes_the_file_and_refuses_an_empty_project(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    empty = opsloop(root, "schedule", "export", "airflow")
    assert empty.returncode == 2 and "no schedules to export" in empty.stderr
    add_schedule(open_project(root), "n", cron="@daily", job="note:x")
    out = tmp_path / "dag.py"
    written = opsloop(root, "schedule", "export", "airflow", "--out", str(out))
    assert written.returncode == 0 and f"wrote {out}" in written.stdout
    text = out.read_text()
    assert 'dag_id="opsloop_sched_n"' in text
    # the file is as ruff would format it (no churn when it is committed to a DAG repo)
    ruff = Path(sys.executable).parent / "ruff"
    check = subprocess.run([str(ruff), "format", "--check", "--diff", str(out)],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout
    shown = opsloop(root, "schedule", "export", "airflow")
    assert shown.stdout.startswith('"""Airflow DAGs for the opsloop project')

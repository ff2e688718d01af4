"""The exported DAG file imported by Airflow's own DagBag, in a throwaway venv with
apache-airflow installed from PyPI (about 25 s with a warm uv cache here; Airflow is never
a dependency of opsloop). Checks every DAG's timetable, timezone, start date and task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsloop.schedule import add_schedule
from opsloop.schedule.airflow import export
from opsloop.testing import make_project

pytestmark = pytest.mark.slow

DAGBAG = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("ignore")
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # Airflow 2
    import airflow
    bag = DagBag(dag_folder=sys.argv[1])
    errors = {k: str(v) for k, v in bag.import_errors.items()}
    out = {"version": airflow.__version__, "errors": errors, "dags": {}}
    for dag_id, dag in bag.dags.items():
        tt = dag.timetable
        out["dags"][dag_id] = {
            "timetable": type(tt).__name__,
            # Airflow 3's SDK timetable has ``expression``; Airflow 2's ``_expression``
            "expression": getattr(tt, "expression", None) or getattr(tt, "_expression", None),
            "timezone": str(getattr(dag.timezone, "name", dag.timezone)),
            "start_date": dag.start_date.isoformat(),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tasks": [{"task_id": t.task_id, "operator": type(t).__name__,
                       "bash_command": t.bash_command, "env": t.env} for t in dag.tasks],
        }
    print(json.dumps(out))
    """
)


def airflow_python(where: Path) -> Path:
    """A venv at ``where`` with apache-airflow installed; its python."""
    uv = Path(sys.executable).parent / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd:
        subprocess.run([uv_cmd, "venv", "-q", "-p", sys.executable, str(where)], check=True)
        python = where / "bin" / "python"
        cmd = [uv_cmd, "pip", "install", "-q", "--python", str(python), "apache-airflow>=2.9"]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        python = where / "bin" / "python"
        cmd = [str(python), "-m", "pip", "install", "-q", "apache-airflow>=2.9"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"apache-airflow did not install: {done.stderr[-2000:]}"
    return python


def test_airflow_dagbag_imports_the_exported_dags(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    t0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    add_schedule(project, "weekly-report", cron="0 8 * * 1", timezone="Europe/Berlin",
                 job="runbook:drift-triage", parameters={"model": "iris"}, now=t0)  # fmt: skip
    add_schedule(project, "drift", cron="@hourly", job="monitor:*", catchup=True, now=t0)
    dags = tmp_path / "dags"
    export(project, dags / "opsloop_dags.py", opsloop="/opt/opsloop/bin/opsloop")

    python = airflow_python(tmp_path / "airflow-venv")
    home = tmp_path / "airflow-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OPSLOOP"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    done = subprocess.run([str(python), "-c", DAGBAG, str(dags)], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    bag = json.loads(done.stdout.strip().splitlines()[-1])
    assert bag["errors"] == {}
    assert set(bag["dags"]) == {"opsloop_proj_weekly-report", "opsloop_proj_drift"}

    weekly = bag["dags"]["opsloop_proj_weekly-report"]
    assert weekly["expression"] == "0 8 * * 1" and weekly["timezone"] == "Europe/Berlin"
    assert weekly["start_date"] == "2026-03-01T23:00:00+00:00"  # 2 March, 00:00 in Berlin
    assert (weekly["catchup"], weekly["max_active_runs"]) == (False, 1)
    (task,) = weekly["tasks"]
    assert task["operator"] == "BashOperator"
    assert task["bash_command"] == (
        f"/opt/opsloop/bin/opsloop --project {project.root} runbook run drift-triage -P model=iris"
    )
    assert task["env"] == {"OPSLOOP_SCHEDULED_FOR": "{{ data_interval_end.isoformat() }}"}

    drift = bag["dags"]["opsloop_proj_drift"]
    assert drift["expression"] == "0 * * * *" and drift["catchup"] is True  # @hourly expanded
    assert drift["tasks"][0]["bash_command"].endswith("monitor watch --once")

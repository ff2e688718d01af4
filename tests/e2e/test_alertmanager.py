"""A real Alertmanager (Debian's prometheus-alertmanager) routes a firing alert to
``opsloop respond serve``: the incident opens and the rule's runbook runs; the resolved
alert resolves it. Alerts are posted through Alertmanager's own v2 API."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from opsloop.records import RunbookRun
from opsloop.respond import incident_view, list_incidents
from opsloop.testing import make_project

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "am-webhook-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, what: str, seconds: float = 60) -> Any:
    deadline = time.time() + seconds  # a bound on waiting, not a speed assertion
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def http(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return text.decode()  # /-/ready answers plain text


def started(proc: subprocess.Popen[bytes], url: str) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
    try:
        http(url)
    except OSError:
        return False
    return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    assert ALERTMANAGER, "prometheus-alertmanager is not installed; run .ci/services.sh"
    root = tmp_path / "project"
    make_project(root)
    # a quick local triage runbook stands in for the shipped one (same name: project wins)
    folder = root / "notebooks" / "runbooks"
    folder.mkdir(parents=True)
    params = new_code_cell('incident_id: str = ""\nproject_dir: str = "."')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# Drift triage"), params,
                             new_code_cell("print('triaged', incident_id)")])  # fmt: skip
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "drift-triage.ipynb")

    port, am_port = free_port(), free_port()
    env = {**os.environ, "OPSLOOP_RESPOND__AUTO_RUN": "background", "AM_TOKEN": TOKEN}
    receiver = subprocess.Popen(
        [sys.executable, "-c", "import sys; from opsloop.cli import main; sys.exit(main())",
         "--project", str(root), "respond", "serve", "--port", str(port),
         "--token-env", "AM_TOKEN"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""route:
  receiver: opsloop
  group_by: [alertname, model]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: opsloop
    webhook_configs:
      - url: http://127.0.0.1:{port}/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
""",
        encoding="utf-8",
    )
    manager = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
         f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: started(receiver, f"http://127.0.0.1:{port}/healthz"), "the receiver")
        am = f"http://127.0.0.1:{am_port}"
        wait_for(lambda: started(manager, f"{am}/-/ready"), "Alertmanager")
        yield {"root": root, "am": am}
    finally:
        for proc in (manager, receiver):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def alert(ends: datetime) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "labels": {"alertname": "OpsloopDataDrift", "model": "fraud", "version": "3",
                       "severity": "warning", "signal": "drift"},
            "annotations": {"summary": "fraud v3: input data drifted"},
            "startsAt": (now - timedelta(minutes=1)).isoformat(),
            "endsAt": ends.isoformat(),
        }
    ]  # fmt: skip


def test_alertmanager_opens_runs_and_resolves(stack: dict[str, Any]) -> None:
    root, am = stack["root"], stack["am"]
    http(f"{am}/api/v2/alerts", alert(datetime.now(UTC) + timedelta(hours=1)))
    project = make_project(root)

    def opened() -> Any:
        return list_incidents(project, open_only=True)

    [view] = wait_for(opened, "the incident Alertmanager's firing alert opens")
    incident = view.incident
    assert incident.subject == "fraud" and incident.runbook == "drift-triage"

    def ran() -> list[RunbookRun]:
        return [r for r in project.records.list(RunbookRun) if r.incident_id == incident.id]

    [run] = wait_for(ran, "the drift-triage run")
    assert run.runbook == "drift-triage" and run.status == "succeeded"
    assert Path(run.output_path).is_file()

    http(f"{am}/api/v2/alerts", alert(datetime.now(UTC) - timedelta(seconds=1)))
    wait_for(lambda: incident_view(project, incident.id).status == "resolved", "the resolve")
    notes = [u.note for u in incident_view(project, incident.id).updates if u.status]
    assert any("resolved by Alertmanager" in n for n in notes)
    assert len(list_incidents(project)) == 1  # a repeat notification never opened another
    result = project.verify_audit()
    assert result.ok, result

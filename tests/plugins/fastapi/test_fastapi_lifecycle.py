"""Server lifecycle, the prediction log, settings, the CLI and the plugin contract."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import opsloop_fastapi.plugin
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import (
    FAST_LOG,
    MODEL,
    RecorderPlugin,
    breast_cancer,
    breast_cancer_store,
    features,
    store_of,
    trained_model,
)
from opsloop_fastapi.app import create_app
from opsloop_fastapi.entries import make_entry
from opsloop_fastapi.predlog import PredictionLog, read_log
from opsloop_fastapi.served import ServedModel
from opsloop_fastapi.settings import Settings
from sklearn.linear_model import LogisticRegression

from opsloop.errors import ConfigError, OpsloopError
from opsloop.testing import assert_plugin_conforms

PREDICT = f"/v1/models/{MODEL}/predict"
HERE = Path(__file__).resolve().parent


def start(project: Any, port: int = 0) -> Any:
    ref = store_of(project).resolve(MODEL, "champion")
    return project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=port)


def post_rows(client: httpx.Client, start_row: int, stop_row: int, request_id: str) -> Any:
    frame = breast_cancer()[features()].iloc[start_row:stop_row]
    response = client.post(
        PREDICT, json={"records": frame.to_dict("records")}, headers={"x-request-id": request_id}
    )
    assert response.status_code == 200, response.text
    return frame


# ---------------------------------------------------------------------- prediction log
@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_hook_read_predictions_reads_the_log_written_off_the_hot_path(
    project_factory: Any, fmt: str
) -> None:
    project = project_factory(config=FAST_LOG + f'log_format = "{fmt}"\n')
    handle = start(project)
    with httpx.Client(base_url=handle.url, trust_env=False) as client:
        first = post_rows(client, 0, 5, "req-a")
        state = handle.app.state.opsloop
        assert state.prediction_log.flush(timeout=10)
        live = project.hook.read_predictions(project=project, model=MODEL, since=None)
        assert list(live["request_id"].unique()) == ["req-a"]  # readable while serving
        second = post_rows(client, 5, 8, "req-b")
    handle.stop()  # flushes what is still queued

    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert len(logged) == 8
    assert list(logged.columns[:30]) == features()
    assert "date" not in logged.columns  # the date=YYYY-MM-DD folders are not a feature
    inputs = pd.concat([first, second], ignore_index=True)
    pd.testing.assert_frame_equal(logged[features()], inputs, check_dtype=False)
    assert logged["request_id"].tolist() == ["req-a"] * 5 + ["req-b"] * 3
    assert logged["prediction"].tolist() == trained_model().predict(inputs).tolist()
    assert set(logged["model_version"]) == {"1"}
    assert str(logged["logged_at"].dt.tz) == "UTC"
    assert (logged["latency_ms"] > 0).all()
    files = list((project.home / "predictions" / MODEL).glob("date=*/part-*"))
    assert files and all(f.suffix == f".{fmt}" for f in files)

    newest = logged["logged_at"].max()
    since = project.hook.read_predictions(project=project, model=MODEL, since=newest.isoformat())
    assert set(since["request_id"]) == {"req-b"}
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert project.hook.read_predictions(project=project, model=MODEL, since=future).empty
    assert project.hook.read_predictions(project=project, model="other", since=None) is None
    with pytest.raises(OpsloopError, match="since='yesterday' is not an ISO date"):
        project.hook.read_predictions(project=project, model=MODEL, since="yesterday")


def test_full_log_queue_drops_and_counts_without_blocking(project_factory: Any) -> None:
    project = project_factory(config="[plugin.fastapi]\nlog_queue_size = 1\n")
    ref = store_of(project).resolve(MODEL, "champion")
    app = create_app(project, ref, trained_model())
    client = TestClient(app)  # no lifespan: the writer never starts, so the queue stays full
    records = breast_cancer()[features()].iloc[:4].to_dict("records")
    for _ in range(3):
        assert client.post(PREDICT, json={"records": records}).status_code == 200
    assert app.state.opsloop.prediction_log.dropped_rows == 8
    text = client.get("/metrics").text
    assert f'opsloop_prediction_log_dropped_rows_total{{model="{MODEL}"}} 8.0' in text
    assert "opsloop_prediction_log_queue_depth 1.0" in text


def test_prediction_log_writer_survives_and_reads_torn_lines(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = PredictionLog(
        tmp_path / "m", fmt="jsonl", queue_size=2, flush_seconds=0.05, on_dropped=dropped.append
    )
    frame = breast_cancer()[features()].iloc[:3]

    def entry(i: int) -> tuple[Any, ...]:
        ts = datetime(2026, 11, 20 + i, 10, tzinfo=UTC).timestamp()
        return make_entry(ts, f"r{i}", "m", "7", "champion", 1.5, None, None, frame, [0, 1, 0])

    assert [log.submit(entry(i)) for i in range(3)] == [True, True, False]
    assert dropped == [3]
    log.start()
    assert log.close(timeout=10)
    assert log.written_rows == 6
    day = tmp_path / "m" / "date=2026-11-21"
    with open(next(day.glob("*.jsonl")), "a", encoding="utf-8") as fh:
        fh.write('{"request_id": "half-writ')  # a line another process is writing right now
    frame_back = read_log(tmp_path / "m", "m", None)
    assert frame_back is not None and frame_back["request_id"].tolist() == ["r0"] * 3 + ["r1"] * 3


# ---------------------------------------------------------------------- lifecycle
def test_stop_frees_the_port_and_is_audited(project_factory: Any) -> None:
    project = project_factory()
    handle = start(project)
    port = handle.port
    assert handle.url == f"http://127.0.0.1:{port}"
    assert httpx.get(f"{handle.url}/health", trust_env=False).status_code == 200
    handle.stop()
    handle.stop()  # idempotent
    assert not handle.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.url}/health", trust_env=False, timeout=2)
    again = start(project, port=port)  # the same port is free to listen on again
    try:
        assert again.url == handle.url
        assert httpx.get(f"{again.url}/ready", trust_env=False).json()["ready"] is True
    finally:
        again.stop()
    actions = [e["action"] for e in project.audit.entries()]
    assert actions.count("serve.stop") == 2


def test_port_in_use_is_a_clear_error(project_factory: Any) -> None:
    project = project_factory()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(OpsloopError, match=f"cannot listen on 127.0.0.1:{port}: .*--port"):
            start(project, port=port)
    finally:
        blocker.close()


def test_no_registry_plugin_is_a_clear_error(project_factory: Any) -> None:
    project = project_factory(registry=False)
    ref = breast_cancer_store().resolve(MODEL, "1")
    with pytest.raises(OpsloopError, match="no model registry plugin is installed"):
        project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=0)


def test_bad_settings_are_one_line_config_errors(project_factory: Any) -> None:
    project = project_factory(config='[plugin.fastapi]\nlog_format = "csv"\n')
    with pytest.raises(ConfigError, match=r"plugin\.fastapi\.log_format"):
        start(project)
    project = project_factory(config="[plugin.fastapi]\nlog_dir = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown key 'plugin\.fastapi\.log_dir'"):
        start(project)


def test_hooks_of_every_plugin_are_called(project_factory: Any) -> None:
    first, second = RecorderPlugin(), RecorderPlugin()
    project = project_factory(("rec1", first), ("rec2", second))
    with start(project) as handle, httpx.Client(base_url=handle.url, trust_env=False) as client:
        post_rows(client, 0, 2, "req-both")
    assert len(first.of("after", "req-both")) == len(second.of("after", "req-both")) == 1


def test_model_holder_swaps_the_served_version_atomically(project_factory: Any) -> None:
    project = project_factory()
    store = store_of(project)
    data = breast_cancer()
    shallow = LogisticRegression(C=1e-4, max_iter=200).fit(data[["mean_area"]], data["target"])
    sig = {"inputs": [{"name": "mean_area", "type": "double"}]}
    v2 = store.add(MODEL, shallow, sig, aliases=("challenger",))
    with start(project) as handle, httpx.Client(base_url=handle.url, trust_env=False) as client:
        old = handle.app.state.opsloop.holder.swap(ServedModel.build(v2, store.load(v2)))
        assert old.ref.version == "1"
        assert client.get("/version").json()["version"] == "2"
        frame = data[["mean_area"]].iloc[:50]
        response = client.post(PREDICT, json={"records": frame.to_dict("records")})
        assert response.status_code == 200 and response.json()["version"] == "2"
        assert response.json()["predictions"] == shallow.predict(frame).tolist()
        assert client.post(PREDICT, json={"records": [{"mean_radius": 1.0}]}).status_code == 422
        assert 'version="2"' in client.get("/metrics").text
        spec = client.get("/openapi.json").json()["components"]["schemas"]
        assert set(spec["Breast_cancerRow"]["properties"]) == {"mean_area"}


def test_plugin_conforms_and_imports_no_vendor_sdk(tmp_path: Path) -> None:
    assert_plugin_conforms(opsloop_fastapi.plugin, tmp_path)
    assert Settings.model_json_schema()["additionalProperties"] is False


# ---------------------------------------------------------------------- CLI
LOCAL_PLUGIN = """
from fastapi_testkit import RegistryPlugin, breast_cancer_store

_plugin = RegistryPlugin(breast_cancer_store())
model_store = _plugin.model_store
"""


def run_cli(root: Path, *args: str) -> subprocess.Popen[str]:
    (root / "localplugins").mkdir(parents=True, exist_ok=True)
    (root / "localplugins" / "memregistry.py").write_text(LOCAL_PLUGIN, encoding="utf-8")
    (root / "opsloop.toml").write_text('[plugins]\npaths = ["localplugins"]\n' + FAST_LOG)
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "PYTHONUNBUFFERED": "1",
        "OPSLOOP_PLUGINS": "fastapi,memregistry",
    }
    cli = Path(sys.executable).with_name("opsloop")
    return subprocess.Popen(
        [str(cli), "--project", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_cli_serve_runs_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "serve", MODEL, "--alias", "champion", "--port", "0")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        banner = lines.get(timeout=60)
        assert banner.startswith(
            f"serving {MODEL} version 1 ({MODEL}@champion) on http://127.0.0.1:"
        )
        url = banner.split(" on ")[1].split(";")[0]
        with httpx.Client(base_url=url, trust_env=False) as client:
            for _ in range(100):  # the banner is printed just before uvicorn starts
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.ConnectError:
                    threading.Event().wait(0.05)
            post_rows(client, 0, 4, "req-cli")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        rest = [lines.get(timeout=5) for _ in range(lines.qsize())]
        assert any(x.startswith(f"stopped serving {MODEL} version 1") for x in rest), rest
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = read_log(tmp_path / ".opsloop" / "predictions" / MODEL, MODEL)
    assert logged is not None and logged["request_id"].tolist() == ["req-cli"] * 4
    audit = (tmp_path / ".opsloop" / "audit.jsonl").read_text()
    assert '"serve.start"' in audit and '"serve.stop"' in audit


def test_cli_serve_with_workers_each_worker_loads_and_logs(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "serve", MODEL, "--port", "0", "--workers", "2")
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    pids: set[int] = set()
    try:
        banner = lines.get(timeout=60)
        assert "; 2 workers, Ctrl-C to stop" in banner, banner
        url = banner.split(" on ")[1].split(";")[0]
        deadline = time.monotonic() + 90
        body = {"records": breast_cancer()[features()].iloc[:1].to_dict("records")}
        while len(pids) < 2 and time.monotonic() < deadline:
            try:  # a new connection each time, so the kernel spreads them over the workers
                with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
                    if client.get("/ready").status_code == 200:
                        pids.add(client.get("/version").json()["pid"])
                        assert client.post(PREDICT, json=body).status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(pids) == 2 and proc.pid not in pids  # two worker processes, not the parent
    files = list((tmp_path / ".opsloop" / "predictions" / MODEL).glob("date=*/part-*.parquet"))
    assert {f.name.split("-")[1] for f in files} == {str(p) for p in pids}  # one writer each


def test_cli_serve_unknown_alias_is_a_one_line_error(project_factory: Any) -> None:
    import typer
    from opsloop_fastapi.cli import register
    from typer.testing import CliRunner

    from opsloop.cli import context

    cli = typer.Typer()
    cli.callback()(lambda: None)
    register(cli)
    project = project_factory()
    context.set_plugins(project.plugins)
    context.set_project_path(project.root)
    try:
        result = CliRunner().invoke(cli, ["serve", MODEL, "--alias", "nope"])
    finally:
        context.set_project_path(None)
        context.set_plugins(None)  # type: ignore[arg-type]
    assert isinstance(result.exception, OpsloopError)
    assert str(result.exception) == "model 'breast_cancer' has no alias or version 'nope'"


def test_hooks_falling_behind_drop_calls_but_not_the_log(project_factory: Any) -> None:
    from fastapi_testkit import app_for

    slow_hook = RecorderPlugin()
    project = project_factory(("slow", slow_hook))
    app = app_for(project, log_queue_size=3)  # the hooks' queue holds 3 requests
    client = TestClient(app)  # no lifespan: neither the hooks' thread nor the writer runs
    body = {"records": breast_cancer()[features()].iloc[:1].to_dict("records")}
    for i in range(5):
        assert client.post(PREDICT, json=body, headers={"x-request-id": f"r{i}"}).status_code == 200
    state = app.state.opsloop
    assert state.scorer.after.dropped == 2
    assert (
        'opsloop_serve_hook_dropped_total{hook="after_predict"} 2.0' in client.get("/metrics").text
    )
    assert state.scorer.after.drain(timeout=10)
    assert [c["request_id"] for h, c in slow_hook.calls if h == "after"] == ["r0", "r1", "r2"]
    assert state.prediction_log.flush(timeout=10)
    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    # r3 and r4 skipped the hooks and went straight to the log (which holds 3 rows too):
    assert {"r3", "r4"} <= set(logged["request_id"])
    assert len(logged) + state.prediction_log.dropped_rows == 5


def test_the_app_can_be_started_again_after_a_stop(project_factory: Any) -> None:
    from fastapi_testkit import app_for

    project = project_factory()
    app = app_for(project)
    body = {"records": breast_cancer()[features()].iloc[:2].to_dict("records")}
    for _ in range(2):  # an ASGI host may run the lifespan twice
        with TestClient(app) as client:
            assert client.get("/ready").json()["ready"] is True
            assert client.post(PREDICT, json=body).status_code == 200
        assert app.state.opsloop.ready is False
    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert len(logged) == 4

"""The monitor metrics: from the check hooks to the serving app's /metrics and the exporter.

A drift check and a model-quality comparison run through the core (``run_check``,
``check_quality``); the plugin's hooks keep their figures; the collector it registers
through ``register_metrics`` serves them, and ``promtool check metrics`` accepts the result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from opsloop_prometheus.exporter import start_exporter
from opsloop_prometheus.state import MonitorState
from prom_testkit import MODEL, TARGET, Store, breast_cancer, features, open_project, promtool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from opsloop import hookimpl
from opsloop.monitor import run_check
from opsloop.profiles import profile_frame
from opsloop.project import Project
from opsloop.quality import check_quality

OPSLOOP = Path(sys.executable).parent / "opsloop"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def lab(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def lint(text: str) -> None:
    done = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def rendered(project: Project) -> str:
    registry = CollectorRegistry(auto_describe=True)
    for collectors in project.hook.register_metrics(project=project):
        for collector in collectors:
            registry.register(collector)
    return generate_latest(registry).decode()


def reference_and_window() -> tuple[Any, pd.DataFrame]:
    """A profile of version 1 of the model, and a window with drift and missing values."""
    data = breast_cancer()
    reference = data.iloc[:400][features()].assign(prediction=data.iloc[:400][TARGET])
    profile = profile_frame(reference, prediction="prediction")
    profile.model, profile.version = MODEL, "1"
    window = data.iloc[400:][features()].reset_index(drop=True)
    window["mean_radius"] = window["mean_radius"] * 1.8  # one strongly drifted feature
    window.loc[: len(window) // 2, "mean_area"] = np.nan  # half missing: a quality finding
    window["prediction"] = data.iloc[400:][TARGET].to_numpy()
    return profile, window


def test_a_drift_check_becomes_metrics(tmp_path: Path) -> None:
    project = open_project(tmp_path / "p")
    try:
        assert "opsloop_drift_detected" not in rendered(project).split("# TYPE")[-1]
        profile, window = reference_and_window()
        check = run_check(project, MODEL, profile, window, window="last 1h",
                          lineage={"model_version": "1"})  # fmt: skip
        assert check.result.drifted and "mean_radius" in check.result.drifted_features
        text = rendered(project)
        lint(text)
        got = samples(text)
        mv = (("model", MODEL), ("version", "1"))
        assert got[("opsloop_drift_detected", mv)] == 1.0
        assert got[("opsloop_drift_checks_total", (("model", MODEL),))] == 1.0
        assert got[("opsloop_drift_features", mv)] == 30.0
        drifted = len(check.result.drifted_features)
        assert got[("opsloop_drift_drifted_features", mv)] == drifted
        assert got[("opsloop_drift_drifted_features_ratio", mv)] == pytest.approx(drifted / 30)
        assert got[("opsloop_drift_window_rows", mv)] == len(window)
        radius = next(f for f in check.result.features if f.feature == "mean_radius")
        score = (("feature", "mean_radius"), ("metric", "psi"), ("model", MODEL))
        assert got[("opsloop_feature_drift_score", score)] == pytest.approx(radius.effect["psi"])
        key = (("adjusted", "true"), ("feature", "mean_radius"), ("model", MODEL))
        assert got[("opsloop_feature_drift_p_value", key)] == pytest.approx(radius.statistic)
        assert got[("opsloop_feature_drifted", (("feature", "mean_radius"), ("model", MODEL)))] == 1
        missing = (("feature", "mean_area"), ("model", MODEL))
        assert got[("opsloop_feature_missing_ratio", missing)] == pytest.approx(0.5, abs=0.02)
        finding = lab(model=MODEL, version="1", severity="warning", type="missing_rate")
        assert got[("opsloop_data_quality_findings", finding)] == 1.0
        assert ("opsloop_feature_drifted", (("feature", "prediction"), ("model", MODEL))) in got

        run_check(project, MODEL, profile, window, window="last 1h", lineage={"model_version": "1"})
        assert samples(rendered(project))[("opsloop_drift_checks_total", (("model", MODEL),))] == 2
    finally:
        project.close()


def test_a_quality_comparison_becomes_metrics(tmp_path: Path) -> None:
    project = open_project(tmp_path / "p")
    try:
        data = breast_cancer().iloc[400:].reset_index(drop=True)
        frame = pd.DataFrame({"prediction": data[TARGET], "label": 1 - data[TARGET]})
        ref = Store().ref
        result, signal_ = check_quality(project, ref, frame, window="last 1h")
        assert signal_ is not None and "accuracy" in result.degraded
        text = rendered(project)
        lint(text)
        got = samples(text)
        mv = lab(model=MODEL, version="1")
        accuracy = lab(model=MODEL, version="1", metric="accuracy")
        assert got[("opsloop_model_quality_degraded", mv)] == 1.0
        assert got[("opsloop_model_quality", accuracy)] == 0.0
        assert got[("opsloop_model_quality", lab(model=MODEL, version="1", metric="f1"))] == 0.0
        assert got[("opsloop_model_quality_baseline", accuracy)] == pytest.approx(0.97)
        assert got[("opsloop_model_quality_metric_degraded", accuracy)] == 1.0
        # f1 has no registered figure: compared with nothing, so neither degraded nor not
        f1 = lab(model=MODEL, version="1", metric="f1")
        assert ("opsloop_model_quality_metric_degraded", f1) not in got
        assert got[("opsloop_model_quality_labelled_rows", mv)] == len(frame)
        assert got[("opsloop_model_quality_checks_total", (("model", MODEL),))] == 1.0
        stored = json.loads((project.home / "prometheus" / "monitor.json").read_text())
        assert stored["models"][MODEL]["quality"]["degraded"] == ["accuracy"]
    finally:
        project.close()


def test_feature_series_can_be_turned_off(tmp_path: Path) -> None:
    config = '[project]\nname = "narrow"\n\n[plugin.prometheus]\nfeature_metrics = false\n'
    project = open_project(tmp_path / "p", config)
    try:
        profile, window = reference_and_window()
        run_check(project, MODEL, profile, window, lineage={"model_version": "1"})
        text = rendered(project)
        assert "opsloop_drift_detected{" in text and "opsloop_feature_" not in text
    finally:
        project.close()


def test_an_unreadable_state_file_serves_no_samples_instead_of_failing(tmp_path: Path) -> None:
    state = MonitorState(tmp_path / "monitor.json")
    state.path.write_text("{ not json")
    assert state.read() == {"models": {}}
    state.path.write_text(json.dumps({"models": {"m": "garbage"}}))
    from opsloop_prometheus.collector import MonitorCollector

    families = list(MonitorCollector(state).collect())
    assert families and all(not f.samples for f in families)


class Widgets:
    """A plugin with its own collector, and one whose hook raises."""

    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.calls = 0

    @hookimpl
    def register_metrics(self, project: Any) -> list[Any]:
        self.calls += 1
        if self.broken:
            raise RuntimeError("this plugin is broken")

        class Collector:
            def collect(self) -> Any:
                family = GaugeMetricFamily("acme_widgets", "Widgets in stock.")
                family.add_metric([], 3.0)
                yield family

        return [Collector()]


def test_hook_register_metrics(tmp_path: Path) -> None:
    """The serving app's /metrics serves what plugins return from register_metrics, beside
    its own metrics and the monitor collector; a plugin whose hook raises is logged."""
    from opsloop_fastapi.app import create_app

    widgets = Widgets()
    project = open_project(tmp_path / "p")
    project.plugins.register(widgets, name="widgets")
    try:
        profile, window = reference_and_window()
        run_check(project, MODEL, profile, window, lineage={"model_version": "1"})
        store = Store()
        app = create_app(project, store.ref, store.load(store.ref))
        assert widgets.calls == 1
        with TestClient(app) as client:
            body = client.get("/metrics").text
        assert "acme_widgets 3.0" in body
        assert 'opsloop_drift_detected{model="bc",version="1"} 1.0' in body
        assert "opsloop_http_requests_total" in body or "opsloop_model_info" in body
        lint(body)

        project.plugins.register(Widgets(broken=True), name="broken")
        app = create_app(project, store.ref, store.load(store.ref))
        with TestClient(app) as client:
            answer = client.get("/metrics")
        assert answer.status_code == 200 and 'opsloop_model_info{name="bc"' in answer.text
    finally:
        project.close()


def test_exporter_serves_the_monitor_metrics(tmp_path: Path) -> None:
    project = open_project(tmp_path / "p")
    try:
        profile, window = reference_and_window()
        run_check(project, MODEL, profile, window, lineage={"model_version": "1"})
        running = start_exporter(project, "127.0.0.1", 0)
        try:
            body = httpx.get(running.url, timeout=10, trust_env=False).text
        finally:
            running.stop()
        assert 'opsloop_drift_detected{model="bc",version="1"} 1.0' in body
        assert "process_cpu_seconds_total" in body
        lint(body)
        with pytest.raises(httpx.HTTPError):
            httpx.get(running.url, timeout=2, trust_env=False)
    finally:
        project.close()


def opsloop(root: Path, *args: str, plugins: str = "prometheus") -> subprocess.Popen[str]:
    env = {**os.environ, "OPSLOOP_PLUGINS": plugins, "COLUMNS": "200"}
    return subprocess.Popen([str(OPSLOOP), "-p", str(root), "monitor", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_cli_exporter_rules_and_dashboard(tmp_path: Path) -> None:
    project = open_project(tmp_path / "p")
    try:
        profile, window = reference_and_window()
        run_check(project, MODEL, profile, window, lineage={"model_version": "1"})
    finally:
        project.close()
    root = tmp_path / "p"
    server = opsloop(root, "exporter", "--port", "0")
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("serving monitor metrics on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split(";")[0].strip()
        body = httpx.get(url, timeout=10, trust_env=False).text
        assert 'opsloop_drift_detected{model="bc",version="1"} 1.0' in body
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "stopped" in out

    dashboard = tmp_path / "dash" / "opsloop.json"
    done = opsloop(root, "dashboard", "-o", str(dashboard))
    assert done.wait(timeout=60) == 0
    assert json.loads(dashboard.read_text())["uid"] == "opsloop-monitor"

    (root / "opsloop.toml").write_text(
        (root / "opsloop.toml").read_text()
        + "\n[plugin.prometheus.slo.other]\nlatency_seconds = 0.3\n"
    )
    bad = opsloop(root, "rules")
    out, err = bad.communicate(timeout=60)
    assert bad.returncode == 2, out + err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "latency_seconds" in lines[0] and "bucket" in lines[0], err


LOG_PLUGIN = """
import pandas as pd

from opsloop import hookimpl
from opsloop.errors import OpsloopError
from opsloop.interfaces import PluginInfo
from opsloop.records import ModelVersionRef


class Store:
    name = "files"

    def list_models(self):
        return ["bc"]

    def resolve(self, name, alias_or_version):
        if name != "bc":
            raise OpsloopError(f"no model {name}")
        return ModelVersionRef(name="bc", version="1", uri="models:/bc/1", store="files",
                               aliases=["champion"])


@hookimpl
def describe_plugin():
    return PluginInfo(name="logfile", stage="serve", summary="a prediction log in a CSV file")


@hookimpl(tryfirst=True)
def model_store(project):
    return Store()


@hookimpl(tryfirst=True)
def read_predictions(project, model, since):
    return pd.read_csv(project.root / "log.csv")
"""


@pytest.mark.slow
def test_cli_exporter_with_watch_checks_and_exports(tmp_path: Path) -> None:
    """`monitor exporter --watch`: one process that checks every served model on an interval
    (here against a log a local plugin reads) and serves what it found."""
    from opsloop.profile_store import save_profile

    root = tmp_path / "p"
    (root / "plugins").mkdir(parents=True)
    (root / "plugins" / "logfile.py").write_text(LOG_PLUGIN)
    (root / "opsloop.toml").write_text('[project]\nname = "w"\n\n[plugins]\npaths = ["plugins"]\n')
    profile, window = reference_and_window()
    window.to_csv(root / "log.csv", index=False)
    project = Project.open(root, environ={"OPSLOOP_PLUGINS": "prometheus,logfile"})
    try:
        save_profile(project, profile)
    finally:
        project.close()
    server = opsloop(
        root, "exporter", "--port", "0", "--watch", "--interval", "1s", plugins="prometheus,logfile"
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "checking every served model every 1s" in line, line
        url = line.split(" on ", 1)[1].split(",")[0].strip()
        deadline = time.monotonic() + 60
        checks = 0.0
        while time.monotonic() < deadline and checks < 2:
            got = samples(httpx.get(url, timeout=10, trust_env=False).text)
            checks = got.get(("opsloop_drift_checks_total", lab(model=MODEL)), 0.0)
            time.sleep(0.2)
        assert checks >= 2, "the exporter's watch did not check twice"
        assert got[("opsloop_drift_detected", lab(model=MODEL, version="1"))] == 1.0
        (root / "log.csv").unlink()  # rounds now fail unexpectedly: it keeps serving
        time.sleep(2.5)
        assert httpx.get(url, timeout=10, trust_env=False).is_success
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "bc v1 (last 1h, 169 rows): DRIFT" in out, out
    assert "watch: the round failed: FileNotFoundError" in out, out


def test_latency_buckets_match_the_serving_histogram() -> None:
    from opsloop_fastapi.metrics import LATENCY_BUCKETS as SERVED
    from opsloop_prometheus.settings import LATENCY_BUCKETS

    assert LATENCY_BUCKETS == SERVED


WRITER = """
import sys
from pathlib import Path
from opsloop.interfaces import DriftResult
from opsloop_prometheus.state import MonitorState

state = MonitorState(Path(sys.argv[1]))
for _ in range(25):
    state.record_drift("m", DriftResult(detector="profile", drifted=False, share_drifted=0.0))
"""


def test_concurrent_checks_lose_no_count(tmp_path: Path) -> None:
    """Two processes recording checks at once (two `monitor check` runs): every one counts,
    and a reader never sees a half-written file."""
    path = tmp_path / "prometheus" / "monitor.json"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path)]) for _ in range(2)]
    reader = MonitorState(path)
    while any(w.poll() is None for w in writers):
        models = reader.read()["models"]
        assert models == {} or models["m"]["drift"]["detector"] == "profile"
    assert [w.returncode for w in writers] == [0, 0]
    assert MonitorState(path).read()["models"]["m"]["drift_checks"] == 50

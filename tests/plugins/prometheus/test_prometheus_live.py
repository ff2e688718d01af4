"""A real Prometheus scrapes a real opsloop serving app and evaluates the generated rules.

The project serves the breast-cancer model with opsloop-fastapi on loopback; the reference
profile is built with the core's own code. Prometheus (Debian's package, started here on a
free loopback port) scrapes /metrics every second and evaluates `opsloop monitor rules`.
Traffic fails 1 prediction in 4 and is slow 1 in 4 (availability objective 0.99, latency
0.05 s for 99%), with drifted inputs, a constant column and wrong labels; then one
`monitor check` (in this process, through the hooks) finds drift, a data-quality problem
and degraded quality. Every alert then fires in Prometheus, the recording rules hold the
error ratios, and every query of the Grafana dashboard returns data.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opsloop_prometheus.dashboard import build_dashboard, queries
from opsloop_prometheus.rules import render_rules
from prom_testkit import FAIL, MODEL, SLOW, TARGET, breast_cancer, features, open_project, promtool
from prom_testkit import run_prometheus as start_prometheus

from opsloop.reference import profile_version
from opsloop.watch import check_model

pytestmark = pytest.mark.slow


def traffic(url: str, stop: threading.Event, sent: dict[str, int]) -> None:
    """Score drifted rows in requests of 5 until stopped: one in four fails, one in four is
    slow; label every scored row wrongly."""
    data = breast_cancer().iloc[400:].reset_index(drop=True)
    rows = data[features()] * 1.6
    rows["mean_texture"] = 20.0  # constant in every logged row: a data-quality finding
    labels = 1 - data[TARGET]
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        turn = 0
        while not stop.is_set():
            start = (turn * 5) % (len(rows) - 5)
            chunk = rows.iloc[start : start + 5].copy()
            kind = ("ok", "fail", "ok", "slow")[turn % 4]
            if kind == "fail":
                chunk[FAIL] = -1.0
            elif kind == "slow":
                chunk[SLOW] = 10.0
            answer = client.post(f"/v1/models/{MODEL}/predict",
                                 json={"records": chunk.to_dict("records")})  # fmt: skip
            sent[kind] += 1
            if answer.status_code == 200:
                request_id = answer.json()["request_id"]
                items = [{"request_id": request_id, "row": i,
                          "label": int(labels.iloc[start + i])} for i in range(5)]  # fmt: skip
                assert client.post("/v1/feedback", json={"items": items}).status_code == 202
            else:
                assert kind == "fail" and answer.status_code == 500, answer.text
            turn += 1
            time.sleep(0.02)


def labelled_rows(project: Any) -> int:
    frame = project.hook.read_predictions(project=project, model=MODEL, since=None)
    return 0 if frame is None else int(frame["label"].notna().sum())


def firing(server: Any) -> set[tuple[str, str, str]]:
    found = server.query('ALERTS{alertstate="firing"}')
    return {(a["metric"]["alertname"], a["metric"].get("severity", ""),
             a["metric"].get("long_window", "")) for a in found}  # fmt: skip


def test_prometheus_scrapes_serving_app_and_fires_every_alert(tmp_path: Path) -> None:
    root = tmp_path / "project"
    project = open_project(root)
    try:
        reference = root / "reference.csv"
        breast_cancer().iloc[:400].to_csv(reference, index=False)
        record, _ = profile_version(project, MODEL, "1", source=str(reference))
        assert record.prediction and len(record.columns) == 30

        rules = tmp_path / "prometheus" / "opsloop.rules.yml"
        rules.parent.mkdir(parents=True)
        rules.write_text(render_rules(project.settings("prometheus")), encoding="utf-8")
        checked = subprocess.run([promtool(), "check", "rules", str(rules)],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr

        ref = project.hook.model_store(project=project).resolve(MODEL, "champion")
        handle = project.hook.start_server(project=project, ref=ref, host="127.0.0.1", port=0)
        stop = threading.Event()
        sent = {"ok": 0, "fail": 0, "slow": 0}
        worker = threading.Thread(target=traffic, args=(handle.url, stop, sent), daemon=True)
        try:
            target = handle.url.removeprefix("http://")
            with start_prometheus(tmp_path / "prometheus", [target], [rules]) as server:
                server.wait_for("the scrape target to be up",
                                lambda: [r for r in server.query('up{job="opsloop"}')
                                         if r["value"][1] == "1"])  # fmt: skip
                worker.start()
                server.wait_for("60 labelled rows in the log", lambda: labelled_rows(project) >= 60)
                found = check_model(project, MODEL)
                assert found.drift is not None and found.drift.result.drifted
                assert {q.type for q in found.drift.result.quality} >= {"constant_column"}
                assert found.quality is not None and "accuracy" in found.quality.degraded

                live = httpx.get(f"{handle.url}/metrics", timeout=10, trust_env=False)
                assert 'opsloop_drift_detected{model="bc",version="1"} 1.0' in live.text
                linted = subprocess.run([promtool(), "check", "metrics"], input=live.text,
                                        capture_output=True, text=True, timeout=60)  # fmt: skip
                assert linted.returncode == 0, linted.stdout + linted.stderr

                expected = {
                    ("OpsloopAvailabilityBurnRate", "page", "1h"),
                    ("OpsloopAvailabilityBurnRate", "page", "6h"),
                    ("OpsloopAvailabilityBurnRate", "ticket", "3d"),
                    ("OpsloopLatencyBurnRate", "page", "1h"),
                    ("OpsloopLatencyBurnRate", "page", "6h"),
                    ("OpsloopLatencyBurnRate", "ticket", "3d"),
                    ("OpsloopDataDrift", "warning", ""),
                    ("OpsloopDataQuality", "warning", ""),
                    ("OpsloopModelQualityDegraded", "warning", ""),
                }
                fired = server.wait_for(
                    "every alert to fire", lambda: expected <= firing(server) and firing(server)
                )
                assert not any(name == "OpsloopMonitorStale" for name, _, _ in fired)

                (ratio,) = server.query('model:opsloop_prediction_errors:ratio_rate5m{model="bc"}')
                assert 0.1 < float(ratio["value"][1]) < 0.45, ratio  # a quarter fails
                (slow,) = server.query('model:opsloop_prediction_slow:ratio_rate5m{model="bc"}')
                assert 0.1 < float(slow["value"][1]) < 0.5, slow  # a third of the successes
                (drifted,) = server.query('opsloop_drift_detected{job="opsloop"}')
                assert drifted["metric"]["version"] == "1" and drifted["value"][1] == "1"

                empty = []
                panels = queries(build_dashboard())
                assert len(panels) >= 15
                for title, expr in panels:
                    concrete = expr.replace("$__rate_interval", "1m").replace("$model", ".*")
                    if not server.query(concrete):
                        empty.append(f"{title}: {concrete}")
                assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
        finally:
            stop.set()
            if worker.is_alive():
                worker.join(timeout=30)
            handle.stop()
        assert sent["fail"] > 0 and sent["slow"] > 0
    finally:
        project.close()

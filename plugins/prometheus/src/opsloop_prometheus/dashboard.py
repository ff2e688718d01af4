"""A Grafana dashboard for serving, SLOs, drift and model quality (``opsloop monitor dashboard``).

Plain Grafana JSON (schema 39, Grafana 10 and later): a ``datasource`` variable of type
prometheus, a ``model`` variable from the serving metrics, and four rows of panels. Every
query uses only the metrics of opsloop-fastapi and opsloop-prometheus and the recording
rules of ``opsloop monitor rules``; ``$__rate_interval`` is Grafana's own.
"""

from __future__ import annotations

import json
from typing import Any

UID = "opsloop-monitor"
M = 'model=~"$model"'


def _panel(
    title: str,
    targets: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    width: int = 8,
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "gridPos": {"h": 8, "w": width, "x": 0, "y": 0},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def _row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}}  # fmt: skip


def _rate(metric: str, by: str, matchers: str = M) -> str:
    return f"sum by ({by}) (rate({metric}{{{matchers}}}[$__rate_interval]))"


def _quantile(q: float) -> str:
    buckets = _rate("opsloop_predict_duration_seconds_bucket", "model, le", f'{M}, role!="shadow"')
    return f"histogram_quantile({q:g}, {buckets})"


def panels() -> list[dict[str, Any]]:
    """Rows and panels in order, without positions."""
    return [
        _row("Serving"),
        _panel(
            "Predictions per second",
            [
                (
                    _rate("opsloop_predict_duration_seconds_count", "model, role"),
                    "{{model}} {{role}}",
                )
            ],
            unit="reqps",
        ),
        _panel(
            "Prediction errors per second, by kind",
            [(_rate("opsloop_prediction_errors_total", "model, kind"), "{{model}} {{kind}}")],
            unit="reqps",
            description="model and timeout are the server's fault and spend the availability "
            "budget; input, refused, rate_limited, too_large, not_found are the client's.",
        ),
        _panel(
            "Predict latency (p50, p99)",
            [(_quantile(0.5), "{{model}} p50"), (_quantile(0.99), "{{model}} p99")],
            unit="s",
        ),
        _panel(
            "HTTP requests by route and status",
            [(_rate("opsloop_http_requests_total", "route, status", ""), "{{route}} {{status}}")],
            unit="reqps",
        ),
        _panel(
            "Prediction log rows written per second",
            [(_rate("opsloop_prediction_log_written_rows_total", "model"), "{{model}}")],
            unit="rowsps",
        ),
        _panel(
            "Served versions",
            [
                (
                    'max by (name, version, slot) (opsloop_model_info{name=~"$model"})',
                    "{{name}} v{{version}} {{slot}}",
                )
            ],
            kind="table",
        ),
        _row("Service-level objectives"),
        _panel(
            "Availability: failed share (5m, 1h)",
            [
                (f"model:opsloop_prediction_errors:ratio_rate5m{{{M}}}", "{{model}} 5m"),
                (f"model:opsloop_prediction_errors:ratio_rate1h{{{M}}}", "{{model}} 1h"),
            ],
            unit="percentunit",
            description="Recording rules of `opsloop monitor rules`.",
        ),
        _panel(
            "Latency: share slower than the objective (5m, 1h)",
            [
                (f"model:opsloop_prediction_slow:ratio_rate5m{{{M}}}", "{{model}} 5m"),
                (f"model:opsloop_prediction_slow:ratio_rate1h{{{M}}}", "{{model}} 1h"),
            ],
            unit="percentunit",
        ),
        _panel(
            "Firing opsloop alerts",
            [
                (
                    'sum by (alertname, severity) (ALERTS{alertstate="firing", '
                    'alertname=~"Opsloop.*"})',
                    "{{alertname}} {{severity}}",
                )
            ],
            kind="table",
        ),
        _row("Drift and data quality"),
        _panel(
            "Drift detected (newest check)",
            [(f"max by (model) (opsloop_drift_detected{{{M}}})", "{{model}}")],
            kind="stat",
        ),
        _panel(
            "Share of features drifted",
            [(f"max by (model) (opsloop_drift_drifted_features_ratio{{{M}}})", "{{model}}")],
            unit="percentunit",
        ),
        _panel(
            "Time since the newest drift check",
            [
                (
                    f"time() - max by (model) (opsloop_drift_check_timestamp_seconds{{{M}}})",
                    "{{model}}",
                )
            ],
            unit="s",
        ),
        _panel(
            "Top features by PSI",
            [
                (
                    f'topk(10, opsloop_feature_drift_score{{{M}, metric="psi"}})',
                    "{{model}} {{feature}}",
                )
            ],
            kind="bargauge",
        ),
        _panel(
            "Top features by Wasserstein distance (reference sd)",
            [
                (
                    f'topk(10, opsloop_feature_drift_score{{{M}, metric="wasserstein"}})',
                    "{{model}} {{feature}}",
                )
            ],
            kind="bargauge",
        ),
        _panel(
            "Data-quality findings (newest check)",
            [
                (
                    f"sum by (model, type, severity) (opsloop_data_quality_findings{{{M}}})",
                    "{{model}} {{type}} {{severity}}",
                )
            ],
            kind="table",
        ),
        _row("Model quality"),
        _panel(
            "Quality metrics: window vs registered",
            [
                (f"opsloop_model_quality{{{M}}}", "{{model}} {{metric}}"),
                (f"opsloop_model_quality_baseline{{{M}}}", "{{model}} {{metric}} registered"),
            ],
        ),
        _panel(
            "Quality degraded (newest window)",
            [(f"max by (model) (opsloop_model_quality_degraded{{{M}}})", "{{model}}")],
            kind="stat",
        ),
        _panel(
            "Labelled rows compared",
            [(f"max by (model) (opsloop_model_quality_labelled_rows{{{M}}})", "{{model}}")],
            kind="stat",
        ),
    ]


def build_dashboard(title: str = "opsloop: serving, drift and quality") -> dict[str, Any]:
    """The dashboard as a dict, panels laid out three to a row under their row headers."""
    laid: list[dict[str, Any]] = []
    y = x = 0
    for number, panel in enumerate(panels(), start=1):
        panel = {**panel, "id": number}
        if panel["type"] == "row":
            if x:
                y += 8
            panel["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y, x = y + 1, 0
        else:
            width = panel["gridPos"]["w"]
            if x + width > 24:
                y, x = y + 8, 0
            panel["gridPos"] = {"h": 8, "w": width, "x": x, "y": y}
            x += width
        laid.append(panel)
    return {
        "uid": UID,
        "title": title,
        "tags": ["opsloop"],
        "timezone": "",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {
                    "name": "model",
                    "type": "query",
                    "label": "Model",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": {
                        "query": "label_values(opsloop_predict_duration_seconds_count, model)",
                        "refId": "models",
                    },
                    "definition": "label_values(opsloop_predict_duration_seconds_count, model)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": laid,
    }


def render_dashboard() -> str:
    return json.dumps(build_dashboard(), indent=2) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]

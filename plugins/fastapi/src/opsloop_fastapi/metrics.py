"""Prometheus metrics of one scoring app, in its own registry (no process-global state).

Route labels are route templates ("/v1/models/{name}/predict"), never raw paths, so the
label set stays bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """Counters and histograms for requests, predictions and the prediction log."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "opsloop_http_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "opsloop_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predict_seconds = Histogram(
            "opsloop_predict_duration_seconds",
            "Time spent in the model's predict (and predict_proba) per request.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_rows = Counter(
            "opsloop_prediction_rows",
            "Rows scored.",
            ["model", "version"],
            registry=r,
        )
        self.prediction_errors = Counter(
            "opsloop_prediction_errors",
            "Prediction requests that failed, by kind (input, refused, model, not_found).",
            ["model", "version", "kind"],
            registry=r,
        )
        self.hook_errors = Counter(
            "opsloop_serve_hook_errors",
            "Exceptions raised by after_predict / on_predict_error hook implementations.",
            ["hook"],
            registry=r,
        )
        self.log_dropped_rows = Counter(
            "opsloop_prediction_log_dropped_rows",
            "Prediction-log rows dropped because the writer queue was full or failed.",
            ["model"],
            registry=r,
        )
        self.log_written_rows = Counter(
            "opsloop_prediction_log_written_rows",
            "Prediction-log rows written to disk.",
            ["model"],
            registry=r,
        )
        self.log_queue_depth = Gauge(
            "opsloop_prediction_log_queue_depth",
            "Requests waiting in the prediction-log queue.",
            registry=r,
        )
        self.model_info = Gauge(
            "opsloop_model_info",
            "The model version this server scores with (value 1).",
            ["name", "version", "uri"],
            registry=r,
        )

    def set_model(self, name: str, version: str, uri: str) -> None:
        """Report the served version (clears the previous one, for hot-swap)."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version, uri=uri).set(1)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.log_queue_depth.set_function(depth)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP request and observes its latency."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self.metrics.request_seconds.labels(route=route, method=method).observe(
                time.perf_counter() - start
            )

"""Prometheus metrics of one scoring app, in its own registry (no process-global state).

Route labels are route templates ("/v1/models/{name}/predict"), never raw paths, so the
label set stays bounded whatever clients send. Label children used on every request are
bound once and cached, so a request pays for an increment, not a label lookup.
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ServerMetrics:
    """Counters and histograms for requests, predictions, limits and the prediction log."""

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
            ["model", "version", "role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prediction_rows = Counter(
            "opsloop_prediction_rows",
            "Rows scored, by the role of the version that scored them.",
            ["model", "version", "role"],
            registry=r,
        )
        self.prediction_errors = Counter(
            "opsloop_prediction_errors",
            "Prediction requests that failed, by kind (input, refused, model, not_found, "
            "timeout, too_large, body_timeout, rate_limited).",
            ["model", "version", "kind"],
            registry=r,
        )
        self.admin_refused = Counter(
            "opsloop_admin_refused",
            "Refused admin requests, by status: 401 no token, 403 wrong token, 429 locked out.",
            ["status"],
            registry=r,
        )
        self.hook_errors = Counter(
            "opsloop_serve_hook_errors",
            "Exceptions raised by after_predict / on_predict_error hook implementations.",
            ["hook"],
            registry=r,
        )
        self.hook_dropped = Counter(
            "opsloop_serve_hook_dropped",
            "after_predict calls dropped because the hook queue was full (hooks too slow).",
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
        self.feedback_rows = Counter(
            "opsloop_feedback_rows",
            "Labels received on /v1/feedback (written, or dropped when the queue was full).",
            ["model", "outcome"],
            registry=r,
        )
        self.shadow = Counter(
            "opsloop_shadow_requests",
            "Requests copied to the shadow model, by outcome (scored, dropped, failed).",
            ["model", "outcome"],
            registry=r,
        )
        self.model_loads = Counter(
            "opsloop_model_loads",
            "Model versions loaded by hot-swap, by slot and outcome (swapped, failed).",
            ["slot", "outcome"],
            registry=r,
        )
        self.model_info = Gauge(
            "opsloop_model_info",
            "The model versions this server scores with (value 1), by slot.",
            ["name", "version", "uri", "slot"],
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, bound once and cached."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def set_models(self, slots: Any) -> None:
        """Report the served versions (clears the previous ones, for hot-swap)."""
        self.model_info.clear()
        for slot, served in (("champion", slots.champion), ("challenger", slots.challenger)):
            if served is not None:
                ref = served.ref
                self.model_info.labels(
                    name=ref.name, version=ref.version, uri=ref.uri, slot=slot
                ).set(1)

    def add_plugin_collectors(self, project: Any) -> int:
        """Serve the collectors plugins return from ``register_metrics`` (drift and quality
        metrics of opsloop-prometheus) beside these; a failing plugin is logged, not fatal.
        Returns how many were added."""
        try:
            answers = project.hook.register_metrics(project=project)
        except Exception:
            logger.exception("a register_metrics hook raised; /metrics serves its own only")
            return 0
        added = 0
        for collectors in answers:
            for collector in collectors or ():
                try:
                    self.registry.register(collector)
                    added += 1
                except ValueError as exc:  # a metric name already served
                    logger.error("metrics collector %r left out: %s", collector, exc)
        return added

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.log_queue_depth.set_function(depth)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

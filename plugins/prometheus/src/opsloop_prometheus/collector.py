"""The drift, data-quality and model-quality metrics: a Prometheus collector over the state
file (:mod:`opsloop_prometheus.state`), read at every scrape.

Names follow the Prometheus conventions: ``opsloop_`` prefix, base units (``_seconds``),
``_total`` on counters, ``_ratio`` on shares; model-level series carry ``model`` and
``version``; per-feature series ``model`` and ``feature`` (the model's output is the
feature ``prediction``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from opsloop_prometheus.state import MonitorState

#: Effect sizes exported per feature, by the name the ``profile`` detector gives them.
EFFECTS = ("psi", "jensen_shannon", "wasserstein")


class MonitorCollector(Collector):
    """Yields the families of :meth:`_families`, filled from the newest checks."""

    def __init__(self, state: MonitorState, *, feature_metrics: bool = True) -> None:
        self.state = state
        self.feature_metrics = feature_metrics

    def describe(self) -> Iterator[Metric]:
        """The families without samples (so registering never reads the state file)."""
        yield from self._families().values()

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        models: dict[str, Any] = self.state.read().get("models", {})
        for model in sorted(models):
            entry = models[model]
            if not isinstance(entry, dict):
                continue
            drift = entry.get("drift")
            if isinstance(drift, dict):
                families["drift_checks"].add_metric([model], float(entry.get("drift_checks", 0)))
                self._drift(families, model, drift)
            quality = entry.get("quality")
            if isinstance(quality, dict):
                checks = float(entry.get("quality_checks", 0))
                families["quality_checks"].add_metric([model], checks)
                self._quality(families, model, quality)
        yield from families.values()

    # ------------------------------------------------------------------ families
    def _families(self) -> dict[str, Any]:
        mv = ["model", "version"]
        f: dict[str, Any] = {
            "drift_checks": CounterMetricFamily(
                "opsloop_drift_checks", "Drift checks run for the model.", labels=["model"]
            ),
            "drift_detected": GaugeMetricFamily(
                "opsloop_drift_detected",
                "1 when the newest drift check found dataset-level drift, else 0.",
                labels=mv,
            ),
            "features_compared": GaugeMetricFamily(
                "opsloop_drift_features",
                "Features compared by the newest drift check.",
                labels=mv,
            ),
            "features_drifted": GaugeMetricFamily(
                "opsloop_drift_drifted_features",
                "Features that drifted in the newest drift check.",
                labels=mv,
            ),
            "share": GaugeMetricFamily(
                "opsloop_drift_drifted_features_ratio",
                "Share of the compared features that drifted in the newest drift check.",
                labels=mv,
            ),
            "rows": GaugeMetricFamily(
                "opsloop_drift_window_rows",
                "Rows in the window of the newest drift check.",
                labels=mv,
            ),
            "checked_at": GaugeMetricFamily(
                "opsloop_drift_check_timestamp_seconds",
                "Unix time of the newest drift check.",
                labels=["model"],
            ),
            "findings": GaugeMetricFamily(
                "opsloop_data_quality_findings",
                "Data-quality findings of the newest drift check, by type and severity.",
                labels=["model", "version", "type", "severity"],
            ),
            "quality_checks": CounterMetricFamily(
                "opsloop_model_quality_checks",
                "Model-quality comparisons run for the model (enough labels had arrived).",
                labels=["model"],
            ),
            "quality": GaugeMetricFamily(
                "opsloop_model_quality",
                "A quality metric of the served model on the newest labelled window.",
                labels=["model", "version", "metric"],
            ),
            "baseline": GaugeMetricFamily(
                "opsloop_model_quality_baseline",
                "The registered figure of the metric the window is compared with.",
                labels=["model", "version", "metric"],
            ),
            "metric_degraded": GaugeMetricFamily(
                "opsloop_model_quality_metric_degraded",
                "1 when the metric is worse than registered beyond tolerance and chance.",
                labels=["model", "version", "metric"],
            ),
            "degraded": GaugeMetricFamily(
                "opsloop_model_quality_degraded",
                "1 when any quality metric of the newest labelled window degraded, else 0.",
                labels=mv,
            ),
            "labels": GaugeMetricFamily(
                "opsloop_model_quality_labelled_rows",
                "Labelled rows the newest model-quality comparison used.",
                labels=mv,
            ),
            "quality_at": GaugeMetricFamily(
                "opsloop_model_quality_check_timestamp_seconds",
                "Unix time of the newest model-quality comparison.",
                labels=["model"],
            ),
        }
        if self.feature_metrics:
            f["score"] = GaugeMetricFamily(
                "opsloop_feature_drift_score",
                "Effect size of a feature's drift (psi, jensen_shannon, wasserstein in "
                "reference standard deviations) in the newest check.",
                labels=["model", "feature", "metric"],
            )
            f["p_value"] = GaugeMetricFamily(
                "opsloop_feature_drift_p_value",
                "P-value of a feature's drift test, adjusted across features "
                '(Benjamini-Hochberg) unless adjusted="false".',
                labels=["model", "feature", "adjusted"],
            )
            f["drifted"] = GaugeMetricFamily(
                "opsloop_feature_drifted",
                "1 when the feature drifted in the newest check (significant and material).",
                labels=["model", "feature"],
            )
            f["missing"] = GaugeMetricFamily(
                "opsloop_feature_missing_ratio",
                "Share of missing values of the feature in the newest window.",
                labels=["model", "feature"],
            )
        return f

    def _drift(self, f: dict[str, Any], model: str, drift: dict[str, Any]) -> None:
        mv = [model, str(drift.get("version", ""))]
        f["drift_detected"].add_metric(mv, 1.0 if drift.get("drifted") else 0.0)
        f["features_compared"].add_metric(mv, float(drift.get("features_compared", 0)))
        f["features_drifted"].add_metric(mv, float(drift.get("features_drifted", 0)))
        f["share"].add_metric(mv, float(drift.get("share_drifted", 0.0)))
        f["rows"].add_metric(mv, float(drift.get("rows", 0)))
        f["checked_at"].add_metric([model], float(drift.get("at", 0.0)))
        for key, count in sorted((drift.get("quality_findings") or {}).items()):
            kind, _, severity = key.partition("\t")
            f["findings"].add_metric([*mv, kind, severity], float(count))
        if not self.feature_metrics:
            return
        features = list(drift.get("features") or [])
        if isinstance(drift.get("prediction"), dict):
            features.append({**drift["prediction"], "feature": "prediction"})
        for feat in features:
            name = str(feat.get("feature", ""))
            for metric in EFFECTS:
                value = (feat.get("effect") or {}).get(metric)
                if value is not None:
                    f["score"].add_metric([model, name, metric], float(value))
            if feat.get("adjusted_p_value") is not None:
                f["p_value"].add_metric([model, name, "true"], float(feat["adjusted_p_value"]))
            if feat.get("p_value") is not None:
                f["p_value"].add_metric([model, name, "false"], float(feat["p_value"]))
            f["drifted"].add_metric([model, name], 1.0 if feat.get("drifted") else 0.0)
            if feat.get("missing_rate") is not None:
                f["missing"].add_metric([model, name], float(feat["missing_rate"]))

    def _quality(self, f: dict[str, Any], model: str, quality: dict[str, Any]) -> None:
        mv = [model, str(quality.get("version", ""))]
        degraded = set(quality.get("degraded") or [])
        for metric, value in sorted((quality.get("metrics") or {}).items()):
            if value is not None:
                f["quality"].add_metric([*mv, metric], float(value))
        for metric in quality.get("compared") or []:  # the metrics with a registered figure
            f["metric_degraded"].add_metric([*mv, metric], 1.0 if metric in degraded else 0.0)
        for metric, value in sorted((quality.get("baseline") or {}).items()):
            if value is not None:
                f["baseline"].add_metric([*mv, metric], float(value))
        f["degraded"].add_metric(mv, 1.0 if degraded else 0.0)
        f["labels"].add_metric(mv, float(quality.get("rows", 0)))
        f["quality_at"].add_metric([model], float(quality.get("at", 0.0)))

"""opsloop-prometheus: monitor metrics for Prometheus, SLO burn-rate rules, a Grafana dashboard."""

__version__ = "0.1.0"

"""Settings of the prometheus plugin: the ``[plugin.prometheus]`` table of opsloop.toml.

Service-level objectives are declared per model::

    [plugin.prometheus.slo.churn]
    availability = 0.999       # share of predictions that must not fail on the server side
    latency_seconds = 0.25     # a prediction slower than this spends the latency budget...
    latency_target = 0.99      # ...of which this share must be faster

``slo."*"`` applies to every model not named.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The buckets of ``opsloop_predict_duration_seconds`` (opsloop-fastapi); a latency objective
#: is counted from the bucket whose upper bound is its threshold, so it must be one of these.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)  # fmt: skip
_DURATION = re.compile(r"^(0|[1-9][0-9]*)(ms|s|m|h|d|w)$")
_MODEL = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})$")


def _duration(value: str, key: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(
            f"{key} must be a Prometheus duration such as 0m, 90s, 5m, 1h (got {value!r})"
        )
    return value


class SLO(BaseModel):
    """The objectives of one model (or of every model not named, under ``"*"``)."""

    model_config = ConfigDict(extra="forbid")

    # share of predictions that must succeed: server-side failures (the model raised or
    # timed out) are bad, client errors (bad input, refused, rate limited) do not count
    availability: float | None = Field(default=None, gt=0, lt=1)
    # latency objective: a prediction slower than this is bad...
    latency_seconds: float | None = Field(default=None, gt=0)
    # ...and this share of predictions must be faster
    latency_target: float = Field(default=0.99, gt=0, lt=1)

    @field_validator("latency_seconds")
    @classmethod
    def _bucket(cls, value: float | None) -> float | None:
        if value is not None and value not in LATENCY_BUCKETS:
            shown = ", ".join(f"{b:g}" for b in LATENCY_BUCKETS)
            raise ValueError(
                f"latency_seconds must be a bucket bound of opsloop_predict_duration_seconds "
                f"({shown}); got {value:g}"
            )
        return value

    @model_validator(mode="after")
    def _something(self) -> SLO:
        if self.availability is None and self.latency_seconds is None:
            raise ValueError("an SLO needs availability, latency_seconds or both")
        return self


class Settings(BaseModel):
    """Objectives, alert timings and the standalone exporter's address."""

    model_config = ConfigDict(extra="forbid")

    # model name (or "*": every model not named) -> its service-level objectives
    slo: dict[str, SLO] = Field(default_factory=dict)
    # extra label matchers every generated expression selects on, e.g. 'job="opsloop"'
    selector: str = ""
    # how long a drift / data-quality / model-quality verdict must hold before it alerts
    drift_for: str = "0m"
    quality_for: str = "0m"
    # alert when no drift check ran for this long (`monitor watch` stopped); "0m": never
    stale_after: str = "1h"
    # burn-rate alerts: how long the condition must hold (the short window already damps it)
    page_for: str = "0m"
    ticket_for: str = "0m"
    # per-feature series (opsloop_feature_drift_*): turn off for very wide models
    feature_metrics: bool = True
    # link put in every alert's annotations, e.g. your runbook index
    runbook_url: str = ""
    # `opsloop monitor exporter` listens here unless --host/--port say otherwise
    exporter_host: str = "127.0.0.1"
    exporter_port: int = Field(default=9108, ge=0, le=65535)

    @field_validator("drift_for", "quality_for", "stale_after", "page_for", "ticket_for")
    @classmethod
    def _durations(cls, value: str, info: object) -> str:
        return _duration(value, getattr(info, "field_name", "duration"))

    @field_validator("slo")
    @classmethod
    def _models(cls, value: dict[str, SLO]) -> dict[str, SLO]:
        for name in value:
            if not _MODEL.match(name):
                raise ValueError(f"slo.{name}: a model name or '*'")
        return value

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str) -> str:
        text = value.strip().strip("{}").strip()
        if text and not re.match(r'^[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"', text):
            raise ValueError(
                f'selector must be label matchers such as job="opsloop" (got {value!r})'
            )
        return text

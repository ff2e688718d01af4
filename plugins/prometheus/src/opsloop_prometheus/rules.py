"""Prometheus rules for the SLOs of ``[plugin.prometheus.slo]`` and for the monitor metrics.

SLO alerts are multiwindow, multi-burn-rate alerts (Google SRE workbook, "Alerting on
SLOs", approach 6): an alert fires when the error budget burns at a rate ``B`` over a long
window **and** over a short window (a twelfth of it), so it starts fast and stops soon
after the burn stops:

======== ============= ============ ==================================================
severity  burn rate     long window  short window (budget spent when it first fires)
======== ============= ============ ==================================================
page      14.4x         1h           5m    (2% of a 30-day budget in an hour)
page      6x            6h           30m   (5% in six hours)
ticket    1x            3d           6h    (10% in three days)
======== ============= ============ ==================================================

Recording rules compute the error ratios once per window (``model:<sli>:ratio_rate<w>``),
so the alerts, the dashboard and people all read the same figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from opsloop_prometheus.settings import SLO, Settings

#: (severity, burn rate, long window, short window), as in the SRE workbook.
BURN_TIERS: tuple[tuple[str, float, str, str], ...] = (
    ("page", 14.4, "1h", "5m"),
    ("page", 6.0, "6h", "30m"),
    ("ticket", 1.0, "3d", "6h"),
)
WINDOWS = ("5m", "30m", "1h", "6h", "3d")

AVAILABILITY = "model:opsloop_prediction_errors:ratio_rate"
LATENCY = "model:opsloop_prediction_slow:ratio_rate"
#: Prediction errors that are the server's fault (the model raised, or took too long).
SERVER_ERRORS = 'kind=~"model|timeout"'


@dataclass(frozen=True)
class Objective:
    """One SLO entry: whom it selects and its objectives."""

    key: str  # the model name, or "*"
    matcher: str  # a PromQL label matcher on ``model``
    slo: SLO


def _go_float(value: float) -> str:
    """A bucket bound as the Prometheus client writes it in ``le`` ("0.25", "1.0", "10.0")."""
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(value))


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def objectives(settings: Settings) -> list[Objective]:
    """The SLO entries, each with the matcher selecting its models ("*": the ones not named)."""
    named = sorted(k for k in settings.slo if k != "*")
    found = [Objective(k, f'model="{_quote(k)}"', settings.slo[k]) for k in named]
    if "*" in settings.slo:
        if named:
            others = "|".join(re.escape(k) for k in named)
            matcher = f'model!~"{_quote(others)}"'
        else:
            matcher = 'model!=""'
        found.append(Objective("*", matcher, settings.slo["*"]))
    return found


def _sel(*parts: str) -> str:
    inner = ", ".join(p for p in parts if p)
    return "{" + inner + "}"


def _availability_expr(window: str, extra: str) -> str:
    errors = _sel(SERVER_ERRORS, extra)
    bad = f"sum by (model) (rate(opsloop_prediction_errors_total{errors}[{window}]))"
    served = _sel('role!="shadow"', extra)
    good = f"sum by (model) (rate(opsloop_predict_duration_seconds_count{served}[{window}]))"
    # a counter that never moved has no series: "or 0 * other side" keeps the ratio defined
    bad_or = f"({bad} or 0 * {good})"
    good_or = f"({good} or 0 * {bad})"
    return f"{bad_or}\n/\n({bad_or} + {good_or})"


def _latency_expr(window: str, objective: Objective, extra: str) -> str:
    assert objective.slo.latency_seconds is not None
    le = _go_float(objective.slo.latency_seconds)
    sel = _sel('role!="shadow"', objective.matcher, extra)
    fast = _sel('role!="shadow"', objective.matcher, f'le="{le}"', extra)
    return (
        f"1 - (\n  sum by (model) (rate(opsloop_predict_duration_seconds_bucket{fast}[{window}]))\n"
        f"  /\n  sum by (model) (rate(opsloop_predict_duration_seconds_count{sel}[{window}]))\n)"
    )


def _annotations(settings: Settings, summary: str, description: str) -> dict[str, str]:
    found = {"summary": summary, "description": description}
    if settings.runbook_url:
        found["runbook_url"] = settings.runbook_url
    return found


def _for(rule: dict[str, Any], duration: str) -> dict[str, Any]:
    if duration not in ("0", "0s", "0m", "0h", "0ms", "0d", "0w"):
        rule["for"] = duration
    return rule


def _burn_alerts(
    settings: Settings, objective: Objective, sli: str, record: str, target: float
) -> list[dict[str, Any]]:
    budget = 1.0 - target
    name = "OpsloopAvailabilityBurnRate" if sli == "availability" else "OpsloopLatencyBurnRate"
    if sli == "availability":
        what = "failed on the server"
    else:
        what = f"were slower than {objective.slo.latency_seconds:g} s"
    alerts = []
    for severity, rate, long_w, short_w in BURN_TIERS:
        threshold = f"{rate:g} * {budget:.10g}"
        long_r = f"{record}{long_w}{_sel(objective.matcher)}"
        short_r = f"{record}{short_w}{_sel(objective.matcher)}"
        expr = f"{long_r} > ({threshold})\nand\n{short_r} > ({threshold})"
        alert = {
            "alert": name,
            "expr": expr,
            "labels": {
                "severity": severity,
                "slo": sli,
                "objective": f"{target:g}",
                "burn_rate": f"{rate:g}",
                "long_window": long_w,
                "short_window": short_w,
            },
            "annotations": _annotations(
                settings,
                f"{{{{ $labels.model }}}}: {sli} error budget burning {rate:g}x "
                f"(over {long_w} and {short_w})",
                f"Over both the last {long_w} and the last {short_w}, more than "
                f"{100 * rate * budget:.4g}% of the predictions of {{{{ $labels.model }}}} "
                f"{what} (objective {target:g}, budget {100 * budget:.4g}%).",
            ),
        }
        alerts.append(_for(alert, settings.page_for if severity == "page" else settings.ticket_for))
    return alerts


def build_rules(settings: Settings) -> dict[str, Any]:
    """The rule file as a dict (``yaml.safe_dump`` it): recording rules, SLO burn-rate alerts,
    drift, data-quality, model-quality and staleness alerts."""
    extra = settings.selector
    found = objectives(settings)
    recording: list[dict[str, Any]] = []
    slo_alerts: list[dict[str, Any]] = []
    if any(o.slo.availability is not None for o in found):
        recording += [
            {"record": f"{AVAILABILITY}{w}", "expr": _availability_expr(w, extra)} for w in WINDOWS
        ]
    for objective in found:
        slo = objective.slo
        if slo.availability is not None:
            slo_alerts += _burn_alerts(settings, objective, "availability", AVAILABILITY,
                                       slo.availability)  # fmt: skip
        if slo.latency_seconds is not None:
            recording += [
                {"record": f"{LATENCY}{w}", "expr": _latency_expr(w, objective, extra),
                 "labels": {"threshold_seconds": f"{slo.latency_seconds:g}"}}
                for w in WINDOWS
            ]  # fmt: skip
            slo_alerts += _burn_alerts(settings, objective, "latency", LATENCY,
                                       slo.latency_target)  # fmt: skip
    groups: list[dict[str, Any]] = []
    if recording:
        groups.append({"name": "opsloop-slo-recording", "rules": recording})
    if slo_alerts:
        groups.append({"name": "opsloop-slo-alerts", "rules": slo_alerts})
    groups.append({"name": "opsloop-monitor-alerts", "rules": monitor_alerts(settings)})
    return {"groups": groups}


def monitor_alerts(settings: Settings) -> list[dict[str, Any]]:
    """Drift, data-quality, model-quality and stale-check alerts on the monitor metrics."""
    extra = _sel(settings.selector) if settings.selector else ""
    serious = _sel('severity=~"warning|critical"', settings.selector)
    rules = [
        _for(
            {
                "alert": "OpsloopDataDrift",
                "expr": f"max by (model, version) (opsloop_drift_detected{extra}) == 1",
                "labels": {"severity": "warning", "signal": "drift"},
                "annotations": _annotations(
                    settings,
                    "{{ $labels.model }} v{{ $labels.version }}: input data drifted",
                    "The newest drift check of {{ $labels.model }} v{{ $labels.version }} "
                    "found dataset-level drift; see opsloop_feature_drifted and "
                    "`opsloop monitor check {{ $labels.model }}`.",
                ),
            },
            settings.drift_for,
        ),
        _for(
            {
                "alert": "OpsloopDataQuality",
                "expr": "sum by (model, version, type) "
                f"(opsloop_data_quality_findings{serious}) > 0",
                "labels": {"severity": "warning", "signal": "data_quality"},
                "annotations": _annotations(
                    settings,
                    "{{ $labels.model }} v{{ $labels.version }}: data-quality findings "
                    "({{ $labels.type }})",
                    "The newest drift check of {{ $labels.model }} found {{ $labels.type }} "
                    "findings of severity warning or above; see `opsloop monitor check "
                    "{{ $labels.model }}`.",
                ),
            },
            settings.quality_for,
        ),
        _for(
            {
                "alert": "OpsloopModelQualityDegraded",
                "expr": f"max by (model, version) (opsloop_model_quality_degraded{extra}) == 1",
                "labels": {"severity": "warning", "signal": "model_quality"},
                "annotations": _annotations(
                    settings,
                    "{{ $labels.model }} v{{ $labels.version }}: model quality degraded",
                    "On the newest labelled window a quality metric of {{ $labels.model }} is "
                    "worse than registered beyond tolerance; see opsloop_model_quality.",
                ),
            },
            settings.quality_for,
        ),
    ]
    if settings.stale_after not in ("0", "0s", "0m", "0h", "0ms", "0d", "0w"):
        from opsloop.durations import parse_duration

        seconds = parse_duration(settings.stale_after)
        rules.append(
            {
                "alert": "OpsloopMonitorStale",
                "expr": "time() - max by (model) "
                f"(opsloop_drift_check_timestamp_seconds{extra}) > {seconds:g}",
                "labels": {"severity": "ticket", "signal": "monitor"},
                "annotations": _annotations(
                    settings,
                    "{{ $labels.model }}: no drift check for " + settings.stale_after,
                    "The newest drift check of {{ $labels.model }} is older than "
                    f"{settings.stale_after}: is `opsloop monitor watch` running?",
                ),
            }
        )
    return rules


def render_rules(settings: Settings) -> str:
    """The rule file as YAML, with a header saying where it came from."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    body = yaml.dump(build_rules(settings), Dumper=_Dumper, sort_keys=False, width=100)
    return (
        "# Generated by `opsloop monitor rules` (opsloop-prometheus) from [plugin.prometheus]\n"
        "# in opsloop.toml. Regenerate it instead of editing it.\n" + body
    )

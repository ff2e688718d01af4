"""The Evidently drift detector: DataDriftPreset per column, verdicts read from the snapshot.

Evidently picks a method per column unless one is set: up to 1000 reference rows, the KS
p-value (0.05) for numeric columns and chi-square / Z-test p-values for categorical or
few-valued ones; past that, the normed Wasserstein distance (0.1) and Jensen-Shannon (0.1).
Its per-column tests say whether each column drifted; opsloop then calls the dataset
drifted when the share of drifted columns reaches ``drift_share``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, first_line
from opsloop.interfaces import DriftResult, FeatureDrift
from opsloop_evidently.frames import dataset_drifted, prepare, report_file, share_rule
from opsloop_evidently.offline import import_evidently

if TYPE_CHECKING:
    import pandas as pd

VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


class EvidentlyDriftDetector:
    """Drift per column with Evidently's DataDriftPreset; optional HTML report."""

    name = "evidently"

    def __init__(
        self,
        drift_share: float = 0.5,
        *,
        method: str | None = None,
        threshold: float | None = None,
    ) -> None:
        self.drift_share = drift_share
        self.method = method
        self.threshold = threshold

    def detect(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
        report_dir: Path | None = None,
    ) -> DriftResult:
        """Run the preset over ``columns`` (default: all); write the HTML report if asked."""
        windows = prepare(reference, current, columns)
        import_evidently()
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(
            numerical_columns=windows.numerical, categorical_columns=windows.categorical
        )
        report = Report(
            [
                DataDriftPreset(
                    columns=windows.columns,
                    drift_share=self.drift_share,
                    method=self.method,
                    threshold=self.threshold,
                )
            ],
            include_tests=True,
        )
        try:
            snapshot = report.run(
                current_data=Dataset.from_pandas(windows.current, data_definition=definition),
                reference_data=Dataset.from_pandas(windows.reference, data_definition=definition),
            )
        except ValueError as exc:
            raise OpsloopError(
                f"evidently could not compute drift: {first_line(exc)}; check [plugin.evidently] "
                "method/threshold and the column types"
            ) from None
        features = features_from_snapshot(snapshot.dict(), windows.columns)
        drifted, share = dataset_drifted(
            sum(f.drifted for f in features), len(features), self.drift_share
        )
        path = None
        if report_dir is not None:
            path = report_file(Path(report_dir), "evidently-drift")
            snapshot.save_html(str(path))
        return DriftResult(
            detector=self.name,
            drifted=drifted,
            share_drifted=share,
            features=features,
            report_path=path,
            reference_rows=len(reference),
            current_rows=len(current),
            rule=share_rule(self.drift_share),
        )


def features_from_snapshot(data: dict[str, Any], columns: list[str]) -> list[FeatureDrift]:
    """Per-column drift from ``Snapshot.dict()``: ValueDrift metrics and their drift tests."""
    status = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in data.get("tests", [])
        if t.get("id") == "drift" and "metric_config" in t
    }
    found: dict[str, FeatureDrift] = {}
    for metric in data.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type") != VALUE_DRIFT:
            continue
        method = str(config.get("method"))
        threshold = float(config.get("threshold"))
        value = metric.get("value")
        statistic = float(value) if value is not None else math.nan
        verdict = status.get(metric.get("id"))
        if verdict is not None:
            drifted = verdict == "FAIL"
        elif "p_value" in method:  # no test attached: p-values drift below, distances above
            drifted = statistic < threshold
        else:
            drifted = statistic >= threshold
        found[config["column"]] = FeatureDrift(
            config["column"], method, statistic, threshold, drifted
        )
    missing = [c for c in columns if c not in found]
    if missing:
        raise OpsloopError(
            f"evidently returned no drift result for {', '.join(missing)}; "
            "this evidently version may be unsupported (tested with 0.7.23)"
        )
    return [found[c] for c in columns]

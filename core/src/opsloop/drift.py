"""The drift check: score a window against a stored reference profile, with numpy alone.

Per feature, two questions, and a feature drifts only when both say yes:

* **Is the change real?** A significance test on the binned counts: for a numeric feature
  the two-sample Kolmogorov-Smirnov test on the binned CDFs (the largest gap between the
  reference's and the window's cumulative shares at the profile's quantile edges; it is
  the most powerful of the usual tests against shifts in location and scale, it uses the
  bins' order, and binning can only shrink the gap, so it stays conservative); for a
  categorical feature Pearson's chi-square test of homogeneity (categories have no order).
  The p-values of all features are adjusted with Benjamini-Hochberg, so among flagged
  features the expected share of false alarms is at most ``alpha``, and on data that did
  not change the chance of any false alarm is at most ``alpha``.
* **Is it large enough to matter?** Effect sizes that do not grow with the window: PSI and
  the Jensen-Shannon distance over up to ``psi_bins`` bins of equal reference mass, and
  the Wasserstein distance divided by the reference's standard deviation. A feature is
  material when any of them reaches its threshold. Without this, a 0.02 standard
  deviation shift is "significant" in a window of 100,000 rows.

The dataset drifted when at least ``min_drifted_features`` features drifted and they are
at least ``drift_share`` of the features compared (default: one feature, any share), or
when the model's prediction drifted. Missing-rate changes (a test of proportions, also
held to ``alpha`` by Benjamini-Hochberg, and at least ``missing_rate_change`` apart),
unseen categories, new, missing, retyped, empty and constant columns are data-quality
findings, never errors.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from opsloop import stats
from opsloop.errors import OpsloopError
from opsloop.interfaces import DriftResult, FeatureDrift, QualityFinding
from opsloop.profiles import (
    ColumnProfile,
    ReferenceProfile,
    SortBuffer,
    bin_counts,
    category_counts,
    column_kind,
    numeric_values,
    profile_frame,
    sorted_finite,
)

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from opsloop.config import MonitorSection

#: The detector's name in ``[monitor] detector``.
NAME = "profile"
EFFECTS = ("psi", "jensen_shannon", "wasserstein")


@dataclass(frozen=True)
class DriftSettings:
    """The knobs of a check; :meth:`from_config` reads them from ``[monitor]``."""

    alpha: float = 0.05
    min_drifted_features: int = 1
    drift_share: float = 0.0
    psi_threshold: float = 0.1
    js_threshold: float = 0.1
    wasserstein_threshold: float = 0.1
    missing_rate_change: float = 0.05
    unseen_share: float = 0.01
    psi_bins: int = 10
    rows_per_bin: int = 50

    @classmethod
    def from_config(cls, monitor: MonitorSection) -> DriftSettings:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in monitor.model_dump().items() if k in names})

    @property
    def thresholds(self) -> dict[str, float]:
        return {
            "psi": self.psi_threshold,
            "jensen_shannon": self.js_threshold,
            "wasserstein": self.wasserstein_threshold,
        }

    def rule(self) -> str:
        """The verdict rule in words, for tables and signals."""
        count = max(1, self.min_drifted_features)
        share = f" and at least {self.drift_share:.0%} of them" if self.drift_share > 0 else ""
        return (
            f"a feature drifts when its Benjamini-Hochberg adjusted p-value is <= {self.alpha:g} "
            f"and PSI >= {self.psi_threshold:g}, Jensen-Shannon >= {self.js_threshold:g} or "
            f"Wasserstein/std >= {self.wasserstein_threshold:g}; the dataset drifts when at "
            f"least {count} feature{'s' if count > 1 else ''}{share} drifted, or the prediction"
        )


@dataclass
class _Scored:
    """One column's figures before the correction across columns."""

    name: str
    kind: str
    method: str
    p_value: float | None
    effect: dict[str, float]
    rows: int
    missing: int
    reference_missing: int
    reference_rows: int


# ---------------------------------------------------------------------------- per column
def coarse_groups(reference: np.ndarray, k: int) -> np.ndarray:
    """For each fine bin, the coarse bin it joins: ``k`` groups of about equal reference
    mass, each cut placed at the fine-bin boundary nearest to its share (a value that holds
    much of the mass, like the 0 of a binary feature, keeps a group of its own)."""
    total = reference.sum()
    if k <= 1 or total <= 0:
        return np.zeros(len(reference), dtype=np.int64)
    cumulative = np.cumsum(reference) / total
    targets = np.arange(1, k) / k
    above = np.minimum(np.searchsorted(cumulative, targets, side="left"), len(cumulative) - 1)
    below = np.maximum(above - 1, 0)
    nearer = np.abs(cumulative[below] - targets) <= np.abs(cumulative[above] - targets)
    cuts = np.unique(np.where(nearer, below, above))
    return np.searchsorted(cuts, np.arange(len(reference)), side="left")


def _coarse(reference: np.ndarray, current: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    groups = coarse_groups(reference, k)
    size = int(groups.max()) + 1 if len(groups) else 0
    ref = np.bincount(groups, weights=reference, minlength=size)
    cur = np.bincount(groups, weights=current, minlength=size)
    used = (ref + cur) > 0
    return ref[used], cur[used]


def score_numeric(
    profile: ColumnProfile,
    values: np.ndarray,
    settings: DriftSettings,
    buffer: SortBuffer | None = None,
) -> tuple[float | None, dict[str, float], np.ndarray]:
    """(KS p-value, effect sizes, the window's sorted values) of one numeric column."""
    ordered = sorted_finite(values, buffer)
    m, n = len(ordered), profile.count
    if m == 0 or n == 0:
        return None, {}, ordered
    edges = np.asarray(profile.edges, dtype=float)
    ref_counts = np.asarray(profile.counts, dtype=float)
    cur_counts, cur_sums = bin_counts(ordered, edges)
    cur_counts = cur_counts.astype(float)
    p_value = stats.ks_pvalue(stats.binned_ks(ref_counts, cur_counts), n, m)
    k = int(min(settings.psi_bins, max(2, min(n, m) // settings.rows_per_bin)))
    ref_k, cur_k = _coarse(ref_counts, cur_counts, k)
    effect = {
        "psi": stats.psi(ref_k, cur_k),
        "jensen_shannon": stats.jensen_shannon(ref_k, cur_k),
    }
    std = profile.std or 0.0
    if std > 0:
        ref_sums = np.asarray(profile.sums, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref_points = np.where(ref_counts > 0, ref_sums / ref_counts, 0.0)
            cur_points = np.where(cur_counts > 0, cur_sums / cur_counts, 0.0)
        distance = stats.wasserstein(ref_points, ref_counts, cur_points, cur_counts)
        effect["wasserstein"] = distance / std
    return p_value, effect, ordered


def score_categorical(
    profile: ColumnProfile, counts: Mapping[str, int], settings: DriftSettings
) -> tuple[float | None, dict[str, float]]:
    """(chi-square p-value, effect sizes) of one categorical column, from its value counts."""
    m = sum(counts.values())
    if m == 0 or profile.count == 0:
        return None, {}
    known = list(profile.categories)
    ref = np.array([profile.categories[c] for c in known] + [profile.other], dtype=float)
    seen = [counts.get(c, 0) for c in known]
    cur = np.array([*seen, m - sum(seen)], dtype=float)
    _, _, p_value = stats.chi2_homogeneity(ref, cur)
    keep = (ref + cur) > 0
    return p_value, {
        "psi": stats.psi(ref[keep], cur[keep]),
        "jensen_shannon": stats.jensen_shannon(ref[keep], cur[keep]),
    }


def _all_same_chance(profile: ColumnProfile, m: int) -> float:
    """The chance that ``m`` rows drawn from the reference all share one bin or category."""
    if profile.kind == "numeric":
        shares = np.asarray(profile.counts, dtype=float)
    else:
        shares = np.array([*profile.categories.values(), profile.other], dtype=float)
    total = shares.sum()
    if total <= 0:
        return 1.0
    shares = shares[shares > 0] / total
    return float(min(1.0, np.sum(shares ** float(m))))


# ---------------------------------------------------------------------------- the check
def check_profile(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    settings: DriftSettings | None = None,
    *,
    columns: list[str] | None = None,
    prediction_column: str | None = "prediction",
    ignore: Collection[str] = (),
) -> DriftResult:
    """Score ``current`` against ``profile`` (see the module docstring for the rules).

    ``columns`` limits the check to some of the profiled features; ``prediction_column``
    names the window's column to compare with the profiled prediction; ``ignore`` lists
    columns that are neither features nor new (a log's request ids, timestamps, ...).
    """
    settings = settings or DriftSettings()
    if columns is not None:
        unknown = [c for c in columns if c not in profile.columns]
        if unknown:
            raise OpsloopError(
                f"column(s) {', '.join(unknown[:8])} are not in the reference profile; "
                f"it has: {', '.join(list(profile.columns)[:12])}"
            )
    wanted = list(columns) if columns is not None else list(profile.columns)
    present = {str(c) for c in current.columns}
    findings: list[QualityFinding] = []
    scored: list[_Scored] = []
    buffer = SortBuffer()
    for name in wanted:
        column = profile.columns[name]
        if name not in present:
            findings.append(
                QualityFinding(
                    name,
                    "missing_column",
                    "warning",
                    f"'{name}' is in the reference profile but not in the window",
                )
            )
            continue
        item = _score_column(name, column, current[name], settings, findings, buffer)
        if item is not None:
            scored.append(item)
    prediction = None
    if profile.prediction is not None and prediction_column and prediction_column in present:
        prediction = _score_column(
            prediction_column,
            profile.prediction,
            current[prediction_column],
            settings,
            findings,
            buffer,
        )
    known = set(profile.columns) | set(profile.skipped) | set(ignore)
    known |= {prediction_column} if prediction_column else set()
    for name in sorted(present - known):
        findings.append(
            QualityFinding(name, "new_column", "info", f"'{name}' is new: not in the profile")
        )
    tested = [s for s in [*scored, *([prediction] if prediction else [])] if s.p_value is not None]
    adjusted = stats.benjamini_hochberg([s.p_value for s in tested])
    q_of = {id(s): float(q) for s, q in zip(tested, adjusted, strict=True)}
    features = [_verdict(s, q_of.get(id(s)), settings) for s in scored if s.p_value is not None]
    predicted = _verdict(prediction, q_of.get(id(prediction)), settings) if prediction else None
    findings.extend(
        _missing_rate_findings([*scored, *([prediction] if prediction else [])], settings)
    )
    drifted_count = sum(f.drifted for f in features)
    share = drifted_count / len(features) if features else 0.0
    by_features = drifted_count >= max(1, settings.min_drifted_features) and (
        share >= settings.drift_share
    )
    return DriftResult(
        detector=NAME,
        drifted=by_features or bool(predicted and predicted.drifted),
        share_drifted=share,
        features=features,
        reference_rows=profile.rows,
        current_rows=len(current),
        quality=findings,
        prediction=predicted if predicted and predicted.p_value is not None else None,
        rule=settings.rule(),
        profile_id=profile.id,
        model_version=profile.version,
    )


def _score_column(
    name: str,
    column: ColumnProfile,
    series: pd.Series,
    settings: DriftSettings,
    findings: list[QualityFinding],
    buffer: SortBuffer | None = None,
) -> _Scored | None:
    rows = len(series)

    def empty() -> _Scored:
        findings.append(
            QualityFinding(
                name,
                "empty_column",
                "warning",
                f"'{name}' has no values in the window ({rows} rows)",
                value=1.0,
                reference=column.missing_rate,
            )
        )
        return _Scored(name, column.kind, "", None, {}, 0, rows, column.missing, column.rows)

    kind = column_kind(series)
    if kind != column.kind:
        if rows and bool(series.isna().all()):
            return empty()  # e.g. a column of nulls, typed 'object' by the reader
        now = kind.partition(":")[2] or kind
        findings.append(
            QualityFinding(
                name,
                "retyped_column",
                "warning",
                f"'{name}' is {column.kind} in the profile ({column.dtype}) but {now} in the "
                f"window ({series.dtype}); it is not compared",
            )
        )
        return None
    if column.kind == "numeric":
        values = numeric_values(series)
        p_value, effect, ordered = score_numeric(column, values, settings, buffer)
        if rows and not len(ordered):
            return empty()
        missing = rows - len(ordered)
        same = len(ordered) >= 2 and ordered[0] == ordered[-1]
        method, m = "ks", len(ordered)
    else:
        counts, missing = category_counts(series)
        if rows and missing == rows:
            return empty()
        p_value, effect = score_categorical(column, counts, settings)
        same = len(counts) == 1 and rows - missing >= 2
        method, m = "chi2", rows - missing
        _unseen(name, column, counts, m, settings, findings)
    if same and column.count > 1:
        chance = _all_same_chance(column, m)
        if chance < settings.alpha:
            findings.append(
                QualityFinding(
                    name,
                    "constant_column",
                    "warning",
                    f"'{name}' holds one value in all {m} rows of the window; the reference "
                    f"varies (chance of that by luck: {chance:.2g})",
                    p_value=chance,
                )
            )
    return _Scored(
        name, column.kind, method, p_value, effect, m, missing, column.missing, column.rows
    )


def _unseen(
    name: str,
    column: ColumnProfile,
    counts: Mapping[str, int],
    m: int,
    settings: DriftSettings,
    findings: list[QualityFinding],
) -> None:
    """Categories the reference never had (only knowable when no category was pooled)."""
    if column.other or not m:
        return
    unseen = {k: v for k, v in counts.items() if k not in column.categories}
    share = sum(unseen.values()) / m
    if unseen and share >= settings.unseen_share:
        top = sorted(unseen.items(), key=lambda kv: -kv[1])[:5]
        shown = ", ".join(f"'{k}' ({v})" for k, v in top)
        more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
        findings.append(
            QualityFinding(
                name,
                "unseen_categories",
                "warning",
                f"'{name}': {share:.1%} of the window's values are categories the reference "
                f"never had: {shown}{more}",
                value=share,
                reference=0.0,
            )
        )


def _verdict(item: _Scored, q_value: float | None, settings: DriftSettings) -> FeatureDrift:
    thresholds = settings.thresholds
    material = any(item.effect.get(k, 0.0) >= thresholds[k] for k in EFFECTS)
    significant = q_value is not None and q_value <= settings.alpha
    return FeatureDrift(
        feature=item.name,
        method=item.method,
        statistic=q_value if q_value is not None else math.nan,
        threshold=settings.alpha,
        drifted=significant and material,
        p_value=item.p_value,
        effect={k: float(v) for k, v in item.effect.items()},
        significant=significant,
        material=material,
        kind=item.kind,
        rows=item.rows,
        missing_rate=item.missing / (item.rows + item.missing)
        if item.rows + item.missing
        else None,
        reference_missing_rate=(
            item.reference_missing / item.reference_rows if item.reference_rows else None
        ),
    )


def _missing_rate_findings(items: list[_Scored], settings: DriftSettings) -> list[QualityFinding]:
    """Missing-rate changes: chi-square on (missing, present) x (reference, window), BH-adjusted."""
    candidates = []
    for item in items:
        window_rows = item.rows + item.missing
        if not window_rows or not item.reference_rows:
            continue
        _, _, p_value = stats.chi2_homogeneity(
            np.array([item.reference_missing, item.reference_rows - item.reference_missing]),
            np.array([item.missing, item.rows]),
            min_expected=0.0,
        )
        candidates.append((item, p_value, item.missing / window_rows))
    if not candidates:
        return []
    adjusted = stats.benjamini_hochberg([c[1] for c in candidates])
    out = []
    for (item, p_value, rate), q in zip(candidates, adjusted, strict=True):
        before = item.reference_missing / item.reference_rows
        if q <= settings.alpha and abs(rate - before) >= settings.missing_rate_change:
            out.append(
                QualityFinding(
                    item.name,
                    "missing_rate",
                    "warning",
                    f"'{item.name}' is missing in {rate:.1%} of the window's rows, "
                    f"{before:.1%} in the reference",
                    value=rate,
                    reference=before,
                    p_value=p_value,
                )
            )
    return out


# ---------------------------------------------------------------------------- detector
class ProfileDetector:
    """The built-in drift detector: checks windows against a stored reference profile.

    ``detect`` (two frames) profiles the reference first, so it works wherever a detector
    is asked for; ``check`` (a stored profile) never needs the raw reference.
    """

    name = NAME

    def __init__(self, settings: DriftSettings | None = None, *, bins: int = 100) -> None:
        self.settings = settings or DriftSettings()
        self.bins = bins

    def check(
        self,
        profile: ReferenceProfile,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
        ignore: Collection[str] = (),
        prediction_column: str | None = "prediction",
    ) -> DriftResult:
        """Score ``current`` against a stored ``profile``."""
        _require_frame(current, "current")
        if len(current) == 0:
            raise OpsloopError(
                "drift check: the current window is empty (0 rows); widen the window or wait "
                "for more data"
            )
        return check_profile(
            profile,
            current,
            self.settings,
            columns=columns,
            ignore=ignore,
            prediction_column=prediction_column,
        )

    def detect(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
        report_dir: Path | None = None,
    ) -> DriftResult:
        """Profile ``reference`` (in memory), then check ``current`` against it; no report."""
        _require_frame(reference, "reference")
        if len(reference) == 0:
            raise OpsloopError(
                "drift check: the reference window is empty (0 rows); widen the window or "
                "wait for more data"
            )
        if columns is not None:
            absent = [c for c in dict.fromkeys(columns) if c not in reference.columns]
            if absent:
                names = ", ".join(f"'{c}'" for c in absent[:8])
                raise OpsloopError(
                    f"drift check: {names} missing from the reference window; fix the data or "
                    "pass columns that exist"
                )
        profile = profile_frame(reference, columns=columns, bins=self.bins)
        return self.check(profile, current, prediction_column=None, ignore=set(reference.columns))


def _require_frame(frame: Any, label: str) -> None:
    if not hasattr(frame, "columns") or not hasattr(frame, "iloc"):
        raise OpsloopError(
            f"drift check: the {label} window must be a pandas DataFrame, "
            f"got {type(frame).__name__}"
        )


def result_dict(result: DriftResult) -> dict[str, Any]:
    """A JSON-ready view of a result (for signals, metrics and ``--json`` output)."""
    data = asdict(result)
    data["report_path"] = str(result.report_path) if result.report_path else None
    return data

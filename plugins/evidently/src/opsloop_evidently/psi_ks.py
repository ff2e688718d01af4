"""A light drift detector on numpy/scipy only: PSI plus a KS (or chi-square) test per feature.

Per feature (NaNs dropped):

* numeric: PSI over reference-quantile bins, and the two-sample Kolmogorov-Smirnov p-value;
* categorical: PSI over the categories, and the chi-square test of homogeneity p-value.

A feature drifts when its p-value is below ``alpha / m`` (Bonferroni over the ``m`` features
compared, so the chance of any false alarm on an unchanged dataset stays near ``alpha``)
or when its PSI exceeds ``psi_threshold``. PSI catches large shifts in big windows where
tests are over-sensitive; the test catches shifts that PSI's coarse bins blur.

PSI's own sampling noise grows with bins / rows, so the number of bins is at most
``max_bins`` and at least 2, with about 50 rows of the smaller window per bin: below that,
PSI on unchanged data exceeds 0.2 often (10 bins, 100 rows: ~12% of features).

No Evidently import: the monitor stage works without Evidently's weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from opsloop.interfaces import DriftResult, FeatureDrift
from opsloop_evidently.frames import dataset_drifted, prepare, share_rule

if TYPE_CHECKING:
    import pandas as pd

#: Floor for bin proportions, so an empty bin does not make PSI infinite.
EPSILON = 1e-4
#: Rows of the smaller window per PSI bin.
ROWS_PER_BIN = 50


def psi_bins(n_reference: int, n_current: int, max_bins: int = 10) -> int:
    """How many quantile bins PSI uses for windows of these sizes."""
    return int(max(2, min(max_bins, min(n_reference, n_current) // ROWS_PER_BIN)))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two count (or proportion) vectors over the same bins."""
    e = np.clip(expected / expected.sum(), EPSILON, None)
    a = np.clip(actual / actual.sum(), EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_counts(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both windows over reference-quantile bins (open-ended outer bins)."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(inner)
    size = len(edges) + 1
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=size)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=size)
    return ref.astype(float), cur.astype(float)


def categorical_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both windows over the union of their categories."""
    ref = reference.astype(str).value_counts()
    cur = current.astype(str).value_counts()
    categories = sorted(set(ref.index) | set(cur.index))
    return (
        ref.reindex(categories, fill_value=0).to_numpy(dtype=float),
        cur.reindex(categories, fill_value=0).to_numpy(dtype=float),
    )


def chi2_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Chi-square test of homogeneity over categories seen in either window."""
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table).pvalue)


class PsiKsDetector:
    """Drift by PSI and a Bonferroni-corrected KS/chi-square test; numpy and scipy only."""

    name = "psi-ks"

    def __init__(
        self,
        drift_share: float = 0.5,
        *,
        alpha: float = 0.05,
        psi_threshold: float = 0.2,
        max_bins: int = 10,
    ) -> None:
        self.drift_share = drift_share
        self.alpha = alpha
        self.psi_threshold = psi_threshold
        self.max_bins = max_bins

    def detect(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
        report_dir: Path | None = None,
    ) -> DriftResult:
        """Compare ``current`` with ``reference`` per feature; no report file is written."""
        windows = prepare(reference, current, columns)
        alpha = self.alpha / len(windows.columns)
        features = [
            self._feature(
                name,
                windows.reference[name].dropna(),
                windows.current[name].dropna(),
                name in windows.numerical,
                alpha,
            )
            for name in windows.columns
        ]
        drifted, share = dataset_drifted(
            sum(f.drifted for f in features), len(features), self.drift_share
        )
        return DriftResult(
            detector=self.name,
            drifted=drifted,
            share_drifted=share,
            features=features,
            report_path=None,
            reference_rows=len(reference),
            current_rows=len(current),
            rule=share_rule(self.drift_share),
        )

    def _feature(
        self, name: str, ref: pd.Series, cur: pd.Series, numeric: bool, alpha: float
    ) -> FeatureDrift:
        if numeric:
            r, c = ref.to_numpy(dtype=float), cur.to_numpy(dtype=float)
            counts = numeric_counts(r, c, psi_bins(len(r), len(c), self.max_bins))
            test, pvalue = "ks", float(stats.ks_2samp(r, c).pvalue)
        else:
            counts = categorical_counts(ref, cur)
            test, pvalue = "chi2", chi2_pvalue(*counts)
        index = psi(*counts)
        if pvalue < alpha or not index > self.psi_threshold:
            # Report the test when it fired, or when nothing fired (the finer signal).
            return FeatureDrift(name, test, pvalue, alpha, pvalue < alpha)
        return FeatureDrift(name, "psi", index, self.psi_threshold, True)

"""The statistics a drift check needs, on numpy alone (scipy is not a core dependency).

Each function is checked against scipy in the test suite: the Kolmogorov distribution
against ``scipy.stats.kstwobign``, the chi-square tail against ``scipy.stats.chi2``, the
homogeneity test against ``chi2_contingency``, Jensen-Shannon against
``scipy.spatial.distance.jensenshannon`` and Wasserstein against ``wasserstein_distance``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Evidently's floor for an empty bin's share in PSI (when no share is smaller than it).
PSI_FLOOR = 1e-4


# ---------------------------------------------------------------------------- KS
def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution (the limit of sqrt(n) * D_n).

    Two series, each fast where the other is slow: Jacobi's theta form below 1.18, the
    alternating series 2 * sum (-1)^(k-1) exp(-2 k^2 x^2) above (Numerical Recipes 6.14).
    """
    if not x > 0:
        return 1.0
    if x < 1.18:
        y = -(math.pi**2) / (8.0 * x * x)
        cdf = (
            math.sqrt(2.0 * math.pi) / x * sum(math.exp((2 * k - 1) ** 2 * y) for k in (1, 2, 3, 4))
        )
        return min(1.0, max(0.0, 1.0 - cdf))
    total = 0.0
    for k in range(1, 8):
        total += (-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x)
    return min(1.0, max(0.0, 2.0 * total))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic ``d`` for samples of n and m rows.

    The asymptotic distribution with Stephens' small-sample correction
    (sqrt(ne) + 0.12 + 0.11 / sqrt(ne)) * d, ne = n m / (n + m). On binned or tied data the
    true p-value is larger (the statistic can only shrink), so the test stays conservative.
    """
    if n <= 0 or m <= 0:
        return 1.0
    root = math.sqrt(n * m / (n + m))
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def binned_ks(reference: np.ndarray, current: np.ndarray) -> float:
    """The KS statistic of two count vectors over the same ordered bins: max |F_ref - F_cur|."""
    n, m = reference.sum(), current.sum()
    if n <= 0 or m <= 0:
        return 0.0
    gap = np.cumsum(reference) / n - np.cumsum(current) / m
    return float(np.max(np.abs(gap)))


# ---------------------------------------------------------------------------- chi-square
def _gamma_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its series (good for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(100_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by Lentz's continued fraction (x >= a + 1)."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(statistic: float, df: int) -> float:
    """P(X > statistic) for a chi-square variable with ``df`` degrees of freedom."""
    if df <= 0 or not statistic > 0:
        return 1.0
    if math.isinf(statistic):
        return 0.0
    a, x = df / 2.0, statistic / 2.0
    if x < a + 1.0:
        return min(1.0, max(0.0, 1.0 - _gamma_series(a, x)))
    return min(1.0, max(0.0, _gamma_fraction(a, x)))


def chi2_homogeneity(
    reference: np.ndarray, current: np.ndarray, min_expected: float = 5.0
) -> tuple[float, int, float]:
    """Pearson's chi-square test that two count vectors come from one distribution.

    Categories whose expected count is below ``min_expected`` in either row are pooled
    into one (the usual rule for the chi-square approximation). Returns (statistic,
    degrees of freedom, p-value); (0, 0, 1) when fewer than two categories remain.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    n, m = ref.sum(), cur.sum()
    if n <= 0 or m <= 0 or len(ref) < 2:
        return 0.0, 0, 1.0
    total = ref + cur
    small = (total * min(n, m) / (n + m)) < min_expected
    if small.any() and not small.all():
        ref = np.append(ref[~small], ref[small].sum())
        cur = np.append(cur[~small], cur[small].sum())
        total = ref + cur
    if len(ref) < 2:
        return 0.0, 0, 1.0
    expected_ref = total * n / (n + m)
    expected_cur = total * m / (n + m)
    statistic = float(
        np.sum((ref - expected_ref) ** 2 / expected_ref)
        + np.sum((cur - expected_cur) ** 2 / expected_cur)
    )
    df = len(ref) - 1
    return statistic, df, chi2_sf(statistic, df)


# ---------------------------------------------------------------------------- corrections
def benjamini_hochberg(pvalues: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values): reject where q <= alpha.

    Controls the expected share of false discoveries among the flagged features at alpha,
    and, when nothing changed at all, the chance of any false alarm at alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


# ---------------------------------------------------------------------------- effect sizes
def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def _floor_zeros(share: np.ndarray) -> np.ndarray:
    """Evidently's rule: an empty bin gets 1e-4, or a millionth of the smallest non-empty share."""
    out = share.astype(float, copy=True)
    positive = out[out > 0]
    if len(positive) == 0:
        return out
    low = float(positive.min())
    out[out == 0] = low / 1e6 if low <= PSI_FLOOR else PSI_FLOOR
    return out


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins.

    sum (cur - ref) * ln(cur / ref) over the bins' shares, empty bins floored as Evidently
    does, so that both give the same value on the same bins.
    """
    ref = _floor_zeros(_shares(np.asarray(reference, dtype=float)))
    cur = _floor_zeros(_shares(np.asarray(current, dtype=float)))
    if not ref.any() or not cur.any():
        return 0.0
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, between 0 and sqrt(ln 2)) of two count vectors."""
    p = _shares(np.asarray(reference, dtype=float))
    q = _shares(np.asarray(current, dtype=float))
    if not p.any() or not q.any():
        return 0.0
    mid = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / mid[mask])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2.0))


def wasserstein(
    ref_points: np.ndarray, ref_weights: np.ndarray, cur_points: np.ndarray, cur_weights: np.ndarray
) -> float:
    """Wasserstein-1 distance between two weighted point sets on the line: the integral of
    |F_ref - F_cur|. A binned profile gives each bin's mean as a point and its count as a
    weight, which is exact up to the spread of values inside a bin."""
    rw = np.asarray(ref_weights, dtype=float)
    cw = np.asarray(cur_weights, dtype=float)
    if rw.sum() <= 0 or cw.sum() <= 0:
        return 0.0
    points = np.concatenate([np.asarray(ref_points, float), np.asarray(cur_points, float)])
    weights = np.concatenate([rw / rw.sum(), -cw / cw.sum()])
    keep = weights != 0
    points, weights = points[keep], weights[keep]
    order = np.argsort(points, kind="stable")
    points, weights = points[order], weights[order]
    gaps = np.diff(points)
    return float(np.sum(np.abs(np.cumsum(weights)[:-1]) * gaps))

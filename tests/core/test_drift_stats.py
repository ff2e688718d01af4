"""The core's numpy statistics against scipy (installed for the tests, not a core dependency)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from opsloop import stats


@pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.6, 0.9, 1.1, 1.18, 1.2, 1.5, 2.0, 3.0, 5.0, 9.0])
def test_kolmogorov_tail_matches_scipy(x: float) -> None:
    assert stats.kolmogorov_sf(x) == pytest.approx(sps.kstwobign.sf(x), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    ("n", "m", "shift"),
    [
        (100_000, 5_000, 0.0),
        (100_000, 5_000, 0.03),
        (400, 80, 0.3),
        (1000, 1000, 0.1),
        (60, 40, 0.5),
    ],
)
def test_ks_pvalue_is_close_to_scipys_two_sample_test(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=n), rng.normal(shift, size=m)
    scipy = sps.ks_2samp(a, b)
    mine = stats.ks_pvalue(float(scipy.statistic), n, m)
    # Stephens' corrected asymptotic formula against scipy's exact/one-sample-n methods:
    # within a few percent of the p-value, or 0.005 absolute where it is large
    assert mine == pytest.approx(scipy.pvalue, rel=0.25, abs=0.005)


def test_binned_ks_equals_the_statistic_on_tied_data() -> None:
    """Where every distinct value is a bin, the binned statistic is scipy's exactly."""
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 12, 3000), rng.integers(1, 12, 2000)
    values = np.arange(0, 12)
    ref = np.array([(a == v).sum() for v in values], dtype=float)
    cur = np.array([(b == v).sum() for v in values], dtype=float)
    assert stats.binned_ks(ref, cur) == pytest.approx(sps.ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.parametrize("df", [1, 2, 3, 9, 30, 99, 500])
def test_chi2_tail_matches_scipy(df: int) -> None:
    for x in (1e-6, 0.5, df / 2, df - 1, df, df + 1, 2 * df, 5 * df + 60, 40 * df + 900):
        assert stats.chi2_sf(x, df) == pytest.approx(sps.chi2.sf(x, df), rel=1e-8, abs=1e-300)


def test_chi2_homogeneity_matches_chi2_contingency() -> None:
    ref = np.array([500, 300, 150, 50])
    cur = np.array([90, 70, 25, 15])
    statistic, df, p = stats.chi2_homogeneity(ref, cur)
    scipy = sps.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert (statistic, df, p) == pytest.approx((scipy.statistic, scipy.dof, scipy.pvalue))


def test_chi2_homogeneity_pools_rare_categories_and_handles_degenerate_input() -> None:
    # categories expected under 5 in the smaller row are pooled into one
    _, df, _ = stats.chi2_homogeneity(np.array([1000, 1000, 2, 1]), np.array([50, 50, 0, 1]))
    assert df == 2
    assert stats.chi2_homogeneity(np.array([5]), np.array([7])) == (0.0, 0, 1.0)
    assert stats.chi2_homogeneity(np.array([0, 0]), np.array([3, 4]))[2] == 1.0


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.random.default_rng(0).uniform(size=40) ** 3
    assert stats.benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p))
    assert len(stats.benjamini_hochberg([])) == 0


def test_jensen_shannon_matches_scipy() -> None:
    ref = np.array([10.0, 20, 30, 0, 5])
    cur = np.array([12.0, 18, 25, 4, 0])
    assert stats.jensen_shannon(ref, cur) == pytest.approx(jensenshannon(ref, cur))
    assert stats.jensen_shannon(ref, ref) == 0.0


def test_wasserstein_matches_scipy_on_weighted_points() -> None:
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=30), rng.normal(0.4, 2, size=20)
    uw, vw = rng.uniform(1, 5, 30), rng.uniform(1, 5, 20)
    assert stats.wasserstein(u, uw, v, vw) == pytest.approx(
        sps.wasserstein_distance(u, v, uw, vw), rel=1e-12
    )


def test_psi_of_a_normal_location_shift_is_about_its_jeffreys_divergence() -> None:
    """PSI over fine bins tends to the symmetric KL divergence: delta^2 for unit normals."""
    edges = np.linspace(-5, 5, 401)
    ref = np.diff(sps.norm.cdf(edges))
    cur = np.diff(sps.norm.cdf(edges, loc=0.25))
    assert stats.psi(ref, cur) == pytest.approx(0.25**2, rel=0.01)
    assert stats.psi(ref, ref) == 0.0

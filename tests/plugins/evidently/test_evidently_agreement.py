"""Where Evidently and the built-in `profile` check run the same test, they agree.

* PSI and Jensen-Shannon on the same bins (Evidently's own Sturges bins): equal.
* The normed Wasserstein distance: Evidently's on the raw data, ours from a 100-bin stored
  profile: within 0.003.
* The KS test: Evidently's p-value (scipy's ks_2samp on the raw data) and ours (from the
  binned CDFs of a stored profile): the same where every value has its own bin, and on
  continuous data ours is a little larger (binning can only shrink the statistic), within
  a factor of 4, and on the same side of 0.05 unless Evidently's is between 0.01 and 0.2.

Evidently's chi-square test is a goodness-of-fit test against the reference's shares; ours
is a test of homogeneity (the reference is a sample too), so they are not compared.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from opsloop import stats
from opsloop.drift import check_profile
from opsloop.profiles import profile_frame

pytest.importorskip("evidently")  # installed with opsloop-evidently; import is slow

from evidently.legacy.calculations.stattests import (
    jensenshannon_stat_test,
    ks_stat_test,
    psi_stat_test,
    wasserstein_stat_test,
)
from evidently.legacy.core import ColumnType

NUMERICAL = ColumnType.Numerical
CASES = [(0.0, 1.0), (0.03, 1.0), (0.1, 1.0), (0.0, 1.1), (0.05, 1.1), (0.25, 1.0)]


def windows(shift: float, scale: float, seed: int = 0) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    return pd.Series(rng.normal(size=20_000)), pd.Series(rng.normal(shift, scale, size=5_000))


@pytest.mark.parametrize(("shift", "scale"), CASES)
def test_psi_and_jensen_shannon_on_evidentlys_bins(shift: float, scale: float) -> None:
    reference, current = windows(shift, scale)
    edges = np.histogram_bin_edges(pd.concat([reference, current]).to_numpy(), bins="sturges")
    ref_counts = np.histogram(reference, edges)[0]
    cur_counts = np.histogram(current, edges)[0]
    evidently_psi = psi_stat_test.func(reference, current, NUMERICAL, 0.1)[0]
    evidently_js = jensenshannon_stat_test.func(reference, current, NUMERICAL, 0.1)[0]
    assert stats.psi(ref_counts, cur_counts) == pytest.approx(evidently_psi, rel=1e-9)
    assert stats.jensen_shannon(ref_counts, cur_counts) == pytest.approx(evidently_js, rel=1e-9)


@pytest.mark.parametrize(("shift", "scale"), CASES)
def test_wasserstein_and_ks_from_a_stored_profile(shift: float, scale: float) -> None:
    reference, current = windows(shift, scale, seed=1)
    profile = profile_frame(pd.DataFrame({"x": reference}))
    mine = check_profile(profile, pd.DataFrame({"x": current})).features[0]
    evidently_w = wasserstein_stat_test.func(reference, current, NUMERICAL, 0.1)[0]
    assert mine.effect["wasserstein"] == pytest.approx(evidently_w, abs=0.003)
    evidently_p = ks_stat_test.func(reference, current, NUMERICAL, 0.05)[0]
    assert mine.p_value is not None
    if not 0.01 < evidently_p < 0.2:  # away from the threshold, the verdicts are the same
        assert (mine.p_value <= 0.05) == (evidently_p <= 0.05)
    assert mine.p_value >= 0.9 * evidently_p  # conservative: binning only shrinks the gap
    if evidently_p > 1e-300:
        assert abs(math.log10(max(mine.p_value, 1e-300)) - math.log10(evidently_p)) < 0.6


def test_ks_is_the_same_test_where_every_value_has_a_bin() -> None:
    rng = np.random.default_rng(2)
    reference = pd.Series(rng.integers(0, 40, 20_000).astype(float))
    current = pd.Series(rng.integers(1, 40, 5_000).astype(float))
    profile = profile_frame(pd.DataFrame({"x": reference}))
    assert profile.columns["x"].discrete
    mine = check_profile(profile, pd.DataFrame({"x": current})).features[0]
    evidently_p = ks_stat_test.func(reference, current, NUMERICAL, 0.05)[0]
    assert mine.p_value == pytest.approx(evidently_p, rel=0.05)

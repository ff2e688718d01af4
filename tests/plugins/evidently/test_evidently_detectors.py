"""Both drift detectors on the shipped breast-cancer data: real Evidently, real scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from opsloop_evidently.detector import EvidentlyDriftDetector, features_from_snapshot
from opsloop_evidently.psi_ks import PsiKsDetector, psi, psi_bins

import opsloop
from opsloop.errors import OpsloopError
from opsloop.interfaces import DriftDetector, DriftResult

DATA = Path(opsloop.__file__).parent / "data" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = pd.read_csv(DATA).drop(columns="target")
    assert df.shape == (569, 30)
    return df


@pytest.fixture(scope="module")
def features(frame: pd.DataFrame) -> list[str]:
    return list(frame.columns)


@pytest.fixture(scope="module")
def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """300 reference rows and the other 269, after a seeded shuffle (the file is ordered)."""
    rows = frame.sample(frac=1, random_state=0).reset_index(drop=True)
    return rows.iloc[:300], rows.iloc[300:]


@pytest.fixture(scope="module")
def shifted_features(features: list[str]) -> list[str]:
    return features[::2]  # 15 of 30


@pytest.fixture(scope="module")
def shifted(split: tuple[pd.DataFrame, pd.DataFrame], shifted_features: list[str]) -> pd.DataFrame:
    current = split[1].copy()
    current[shifted_features] = current[shifted_features] * 1.5
    return current


@pytest.fixture(scope="module")
def evidently_no_drift(split: tuple[pd.DataFrame, pd.DataFrame]) -> DriftResult:
    return EvidentlyDriftDetector().detect(*split)


@pytest.fixture(scope="module")
def evidently_shifted(
    split: tuple[pd.DataFrame, pd.DataFrame],
    shifted: pd.DataFrame,
    tmp_path_factory: pytest.TempPathFactory,
) -> DriftResult:
    report_dir = tmp_path_factory.mktemp("reports") / "drift"
    return EvidentlyDriftDetector().detect(split[0], shifted, report_dir=report_dir)


def drifted_names(result: DriftResult) -> set[str]:
    return {f.feature for f in result.features if f.drifted}


# ------------------------------------------------------------------ evidently
def test_evidently_detector_satisfies_the_protocol() -> None:
    detector = EvidentlyDriftDetector()
    assert isinstance(detector, DriftDetector)
    assert detector.name == "evidently"


def test_evidently_finds_no_drift_between_random_halves(
    evidently_no_drift: DriftResult, features: list[str]
) -> None:
    result = evidently_no_drift
    assert result.detector == "evidently"
    assert not result.drifted
    assert result.share_drifted <= 0.1
    assert (result.reference_rows, result.current_rows) == (300, 269)
    assert [f.feature for f in result.features] == features
    # Evidently picks KS for numeric columns under 1000 rows; statistic is its p-value.
    assert {f.method for f in result.features} == {"K-S p_value"}
    assert all(f.threshold == 0.05 for f in result.features)
    assert all(f.drifted == (f.statistic < f.threshold) for f in result.features)
    assert result.report_path is None


def test_evidently_flags_exactly_the_shifted_features(
    evidently_shifted: DriftResult, shifted_features: list[str]
) -> None:
    result = evidently_shifted
    assert result.drifted
    assert result.share_drifted >= 0.5
    flagged = drifted_names(result)
    assert set(shifted_features) <= flagged
    # KS at 0.05 per column without correction: at most a stray unshifted column or two.
    assert len(flagged - set(shifted_features)) <= 2
    assert result.share_drifted == pytest.approx(len(flagged) / 30)


def test_evidently_writes_a_timestamped_html_report(evidently_shifted: DriftResult) -> None:
    path = evidently_shifted.report_path
    assert path is not None and path.is_file()
    assert path.parent.name == "drift"
    assert path.name.startswith("evidently-drift-") and path.suffix == ".html"
    assert path.stat().st_size > 100_000
    head = path.read_text(encoding="utf-8")[:2000].lower()
    assert "<html" in head


def test_evidently_honours_columns(
    split: tuple[pd.DataFrame, pd.DataFrame], shifted: pd.DataFrame, features: list[str]
) -> None:
    wanted = [features[1], features[0], features[2]]  # one unshifted, two shifted
    result = EvidentlyDriftDetector(drift_share=0.5).detect(split[0], shifted, columns=wanted)
    assert [f.feature for f in result.features] == wanted
    assert [f.drifted for f in result.features] == [False, True, True]
    assert result.share_drifted == pytest.approx(2 / 3)
    assert result.drifted


def test_evidently_uses_its_drift_share(
    split: tuple[pd.DataFrame, pd.DataFrame], shifted: pd.DataFrame, features: list[str]
) -> None:
    wanted = [features[1], features[0], features[2]]
    result = EvidentlyDriftDetector(drift_share=0.7).detect(split[0], shifted, columns=wanted)
    assert result.share_drifted == pytest.approx(2 / 3)
    assert not result.drifted


def test_evidently_compares_categorical_columns() -> None:
    ref = pd.DataFrame({"colour": ["red"] * 150 + ["blue"] * 150, "n": range(300)})
    cur = pd.DataFrame({"colour": ["red"] * 30 + ["blue"] * 240, "n": range(270)})
    result = EvidentlyDriftDetector().detect(ref, cur, columns=["colour"])
    (colour,) = result.features
    assert colour.drifted and colour.statistic < colour.threshold
    assert "p_value" in colour.method


def test_evidently_uses_distances_past_1000_rows() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=1500), "y": rng.normal(size=1500)})
    cur = pd.DataFrame({"x": rng.normal(loc=1.0, size=1500), "y": rng.normal(size=1500)})
    cur["c"] = ref["c"] = "a"
    cur.loc[:700, "c"] = "b"
    x, y, c = EvidentlyDriftDetector().detect(ref, cur).features
    assert x.method == "Wasserstein distance (normed)" and x.threshold == 0.1
    assert x.drifted and x.statistic >= 0.1
    assert not y.drifted and y.statistic < 0.1
    assert c.method == "Jensen-Shannon distance" and c.drifted


def test_evidently_reports_an_unknown_method(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    detector = EvidentlyDriftDetector(method="no-such-test")
    with pytest.raises(OpsloopError, match="evidently could not compute drift: No stattest"):
        detector.detect(*split, columns=["mean_radius"])


def test_evidently_on_the_files_own_order(frame: pd.DataFrame) -> None:
    """The file is ordered (first 300 rows: 51% class 1, the rest: 75%): that is real drift.

    Evidently's KS at 0.05 per column (no multiple-test correction) flags 20 of 30 columns;
    psi-ks's Bonferroni-corrected test flags fewer, below the 0.5 share.
    """
    ref, cur = frame.iloc[:300], frame.iloc[300:]
    evidently = EvidentlyDriftDetector().detect(ref, cur)
    light = PsiKsDetector().detect(ref, cur)
    assert evidently.drifted and evidently.share_drifted > 0.6
    assert drifted_names(light) <= drifted_names(evidently)
    assert 0.25 < light.share_drifted < 0.5 and not light.drifted


# ------------------------------------------------------------------ psi-ks
def test_psi_ks_detector_satisfies_the_protocol() -> None:
    assert isinstance(PsiKsDetector(), DriftDetector)
    assert PsiKsDetector().name == "psi-ks"


def test_psi_ks_agrees_on_no_drift(
    split: tuple[pd.DataFrame, pd.DataFrame], evidently_no_drift: DriftResult
) -> None:
    result = PsiKsDetector().detect(*split)
    assert not result.drifted and not evidently_no_drift.drifted
    assert result.share_drifted <= evidently_no_drift.share_drifted
    assert (result.reference_rows, result.current_rows) == (300, 269)
    assert result.report_path is None


def test_psi_ks_agrees_on_the_shift(
    split: tuple[pd.DataFrame, pd.DataFrame],
    shifted: pd.DataFrame,
    shifted_features: list[str],
    evidently_shifted: DriftResult,
) -> None:
    result = PsiKsDetector().detect(split[0], shifted)
    assert result.drifted and evidently_shifted.drifted
    assert drifted_names(result) == set(shifted_features)
    assert drifted_names(result) <= drifted_names(evidently_shifted)
    assert result.share_drifted == 0.5


def test_psi_ks_flags_an_additive_shift(
    split: tuple[pd.DataFrame, pd.DataFrame], shifted_features: list[str]
) -> None:
    ref, cur = split[0], split[1].copy()
    cur[shifted_features] = cur[shifted_features] + 2 * ref[shifted_features].std()
    result = PsiKsDetector().detect(ref, cur)
    assert result.drifted
    assert drifted_names(result) == set(shifted_features)


def test_psi_ks_reports_bonferroni_thresholds(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    result = PsiKsDetector(alpha=0.05).detect(*split)
    for f in result.features:
        assert f.method == "ks"
        assert f.threshold == pytest.approx(0.05 / 30)
        assert 0.0 <= f.statistic <= 1.0
        assert f.drifted == (f.statistic < f.threshold)


def test_psi_ks_fires_on_psi_alone_in_big_windows() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=5000)})
    cur = pd.DataFrame({"x": rng.normal(size=5000)})
    quiet = PsiKsDetector().detect(ref, cur)
    assert not quiet.drifted
    # A shift PSI sees but a test with alpha ~0 does not: the verdict names PSI.
    cur_shifted = pd.DataFrame({"x": rng.normal(loc=0.5, size=5000)})
    result = PsiKsDetector(alpha=1e-300).detect(ref, cur_shifted)
    (x,) = result.features
    assert x.method == "psi" and x.threshold == 0.2 and x.statistic > 0.2 and x.drifted


def test_psi_ks_keeps_false_alarms_rare_on_small_windows() -> None:
    rng = np.random.default_rng(2)
    alarms = 0
    for _ in range(20):
        ref = pd.DataFrame(rng.normal(size=(300, 30)), columns=[f"f{i}" for i in range(30)])
        cur = pd.DataFrame(rng.normal(size=(60, 30)), columns=[f"f{i}" for i in range(30)])
        alarms += sum(f.drifted for f in PsiKsDetector().detect(ref, cur).features)
    assert alarms <= 6  # of 600 unchanged feature comparisons


def test_psi_bins_shrink_with_the_window() -> None:
    assert psi_bins(300, 269) == 5
    assert psi_bins(5000, 5000) == 10
    assert psi_bins(300, 60) == 2
    assert psi_bins(300, 3) == 2
    assert psi_bins(5000, 5000, max_bins=4) == 4


def test_psi_of_identical_distributions_is_zero() -> None:
    counts = np.array([10.0, 20.0, 30.0])
    assert psi(counts, counts * 3) == pytest.approx(0.0)
    assert psi(counts, np.array([30.0, 20.0, 10.0])) > 0.2


def test_psi_ks_compares_categorical_columns() -> None:
    ref = pd.DataFrame({"colour": ["red"] * 150 + ["blue"] * 150})
    same = pd.DataFrame({"colour": ["red"] * 140 + ["blue"] * 130})
    moved = pd.DataFrame({"colour": ["red"] * 30 + ["blue"] * 200 + ["green"] * 40})
    assert not PsiKsDetector().detect(ref, same).drifted
    result = PsiKsDetector().detect(ref, moved)
    (colour,) = result.features
    assert result.drifted and colour.method == "chi2" and colour.statistic < 0.05


def test_psi_ks_ignores_missing_values_and_constant_columns() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, np.nan] * 100, "k": [3.0] * 300})
    cur = pd.DataFrame({"x": [2.0, 1.0, np.nan] * 90, "k": [3.0] * 270})
    result = PsiKsDetector().detect(ref, cur)
    assert not result.drifted
    assert all(np.isfinite(f.statistic) for f in result.features)


def test_psi_ks_honours_columns(
    split: tuple[pd.DataFrame, pd.DataFrame], shifted: pd.DataFrame, features: list[str]
) -> None:
    wanted = [features[1], features[0]]
    result = PsiKsDetector(drift_share=0.5).detect(split[0], shifted, columns=wanted)
    assert [(f.feature, f.drifted) for f in result.features] == [
        (features[1], False),
        (features[0], True),
    ]
    assert result.drifted and result.share_drifted == 0.5
    # Bonferroni over the 2 compared features, not the 30 in the frame.
    assert result.features[0].threshold == pytest.approx(0.025)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("detector", [EvidentlyDriftDetector(), PsiKsDetector()])
def test_empty_current_window_is_refused(
    detector: DriftDetector, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    with pytest.raises(OpsloopError, match=r"the current window is empty \(0 rows\)"):
        detector.detect(split[0], split[1].iloc[:0])


@pytest.mark.parametrize("detector", [EvidentlyDriftDetector(), PsiKsDetector()])
def test_missing_columns_are_named(
    detector: DriftDetector, split: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    current = split[1].drop(columns=["mean_radius", "worst_area"])
    with pytest.raises(OpsloopError) as info:
        detector.detect(split[0], current, columns=["mean_radius", "worst_area", "nope"])
    message = str(info.value)
    assert "\n" not in message
    assert "'nope' missing from the reference window" in message
    assert "'mean_radius', 'worst_area', 'nope' missing from the current window" in message


def test_reference_columns_missing_from_current_are_named(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    with pytest.raises(OpsloopError, match="'worst_area' missing from the current window"):
        PsiKsDetector().detect(split[0], split[1].drop(columns="worst_area"))


def test_datetime_and_empty_and_mixed_columns_are_refused() -> None:
    ref = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=3), "x": [1.0, 2.0, 3.0]})
    with pytest.raises(OpsloopError, match="'t' are date/time columns"):
        PsiKsDetector().detect(ref, ref)
    blank = pd.DataFrame({"x": [np.nan] * 3})
    with pytest.raises(OpsloopError, match="'x' have no values in the current window"):
        PsiKsDetector().detect(ref[["x"]], blank)
    words = pd.DataFrame({"x": ["a", "b", "c"]})
    with pytest.raises(OpsloopError, match="'x' are numeric in one window and not in the other"):
        PsiKsDetector().detect(ref[["x"]], words)
    with pytest.raises(OpsloopError, match="must be a pandas DataFrame"):
        PsiKsDetector().detect(ref, [1, 2, 3])  # type: ignore[arg-type]


def test_snapshot_without_a_column_is_an_error() -> None:
    data = {
        "metrics": [
            {
                "id": "m1",
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "a",
                    "method": "Wasserstein distance (normed)",
                    "threshold": 0.1,
                },
                "value": 0.3,
            }
        ],
        "tests": [],
    }
    (a,) = features_from_snapshot(data, ["a"])
    assert a.drifted and a.statistic == 0.3  # distance above threshold, no test attached
    with pytest.raises(OpsloopError, match="no drift result for b"):
        features_from_snapshot(data, ["a", "b"])

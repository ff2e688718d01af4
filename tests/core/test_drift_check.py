"""The built-in drift check against a profile: calibration, the verdict rule, data quality.

The calibration here is the light version of tests/benchmarks/bench_drift_calibration.py
(fewer windows): default settings, a 100,000-row reference of 50 normal features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.drift import DriftSettings, ProfileDetector, check_profile
from opsloop.errors import OpsloopError
from opsloop.profiles import ReferenceProfile, profile_frame

FEATURES = [f"f{i:02d}" for i in range(50)]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(20261127)


@pytest.fixture(scope="module")
def reference(rng: np.random.Generator) -> ReferenceProfile:
    frame = pd.DataFrame(rng.normal(size=(100_000, 50)), columns=FEATURES)
    frame.loc[rng.random(len(frame)) < 0.10, "f07"] = np.nan  # 10% missing in one feature
    return profile_frame(frame)


def window(
    rng: np.random.Generator, rows: int, shift: float = 0.0, shifted: int = 0, missing: float = 0.1
) -> pd.DataFrame:
    values = rng.normal(size=(rows, 50))
    values[:, :shifted] += shift
    frame = pd.DataFrame(values, columns=FEATURES)
    frame.loc[rng.random(rows) < missing, "f07"] = np.nan
    return frame


def test_calibration_no_drift(reference: ReferenceProfile, rng: np.random.Generator) -> None:
    results = [check_profile(reference, window(rng, 5_000)) for _ in range(40)]
    assert sum(r.drifted for r in results) <= 2  # target: <= 5% of windows
    assert sum(bool(r.quality) for r in results) <= 2  # no spurious data-quality findings


def test_calibration_a_quarter_sigma_in_5_of_50(
    reference: ReferenceProfile, rng: np.random.Generator
) -> None:
    results = [check_profile(reference, window(rng, 5_000, 0.25, 5)) for _ in range(40)]
    assert sum(r.drifted for r in results) >= 38  # target: >= 95%
    named = sum(r.drifted_features == FEATURES[:5] for r in results)
    assert named >= 38  # exactly the five shifted features, nothing else
    first = results[0].features[0]
    assert first.significant and first.material and first.effect["wasserstein"] > 0.2


def test_calibration_a_tiny_shift_in_big_windows_is_not_material(
    reference: ReferenceProfile, rng: np.random.Generator
) -> None:
    results = [check_profile(reference, window(rng, 100_000, 0.02, 50)) for _ in range(4)]
    assert not any(r.drifted for r in results)
    # the shift is real and the test sees it; the effect sizes say it does not matter
    assert sum(f.significant for r in results for f in r.features) > 100
    assert max(f.effect["wasserstein"] for r in results for f in r.features) < 0.06


def test_calibration_missing_rate_change(
    reference: ReferenceProfile, rng: np.random.Generator
) -> None:
    found = 0
    for _ in range(40):
        current = window(rng, 5_000, missing=0.30)
        result = check_profile(reference, current)
        hits = [q for q in result.quality if q.type == "missing_rate"]
        found += [q.column for q in hits] == ["f07"]
    assert found >= 38  # target: >= 95%
    finding = hits[0]
    assert finding.reference == pytest.approx(0.10, abs=0.005)
    assert finding.value == pytest.approx(0.30, abs=0.03)


def test_one_strong_feature_of_three_is_drift() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame(rng.normal(size=(2_000, 3)), columns=list("abc"))
    cur = pd.DataFrame(rng.normal(size=(500, 3)), columns=list("abc"))
    cur["b"] += 1.0
    result = ProfileDetector().detect(ref, cur)
    assert result.drifted and result.drifted_features == ["b"]
    assert result.share_drifted == pytest.approx(1 / 3)
    assert "at least 1 feature" in result.rule


def test_verdict_rule_settings() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame(rng.normal(size=(5_000, 4)), columns=list("abcd"))
    cur = pd.DataFrame(rng.normal(size=(1_000, 4)), columns=list("abcd"))
    cur[["a", "b"]] += 1.0
    profile = profile_frame(ref)
    assert check_profile(profile, cur).drifted
    assert not check_profile(profile, cur, DriftSettings(min_drifted_features=3)).drifted
    assert check_profile(profile, cur, DriftSettings(drift_share=0.5)).drifted  # 2 of 4: >=
    assert not check_profile(profile, cur, DriftSettings(drift_share=0.6)).drifted
    strict = DriftSettings(wasserstein_threshold=5, psi_threshold=9, js_threshold=0.9)
    result = check_profile(profile, cur, strict)
    assert not result.drifted and all(not f.material for f in result.features)
    assert result.features[0].significant  # significant, but below every effect threshold


def test_data_quality_findings_never_crash() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    ref = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "gone": rng.normal(size=n),
            "typed": rng.normal(size=n),
            "flat": rng.normal(size=n),
            "empty": rng.normal(size=n),
            "colour": rng.choice(["red", "green"], n),
        }
    )
    profile = profile_frame(ref)
    m = 400
    cur = pd.DataFrame(
        {
            "num": rng.normal(size=m),
            "typed": ["n/a"] * m,
            "flat": np.full(m, 0.5),
            "empty": [None] * m,
            "colour": rng.choice(["red", "green", "purple"], m, p=[0.45, 0.45, 0.10]),
            "extra": rng.normal(size=m),
        }
    )
    result = check_profile(profile, cur)
    found = {(q.column, q.type) for q in result.quality}
    assert found == {
        ("gone", "missing_column"),
        ("typed", "retyped_column"),
        ("flat", "constant_column"),
        ("empty", "empty_column"),
        ("empty", "missing_rate"),
        ("colour", "unseen_categories"),
        ("extra", "new_column"),
    }
    severities = {q.type: q.severity for q in result.quality}
    assert severities["new_column"] == "info" and severities["missing_column"] == "warning"
    unseen = next(q for q in result.quality if q.type == "unseen_categories")
    assert "'purple'" in unseen.detail and unseen.value == pytest.approx(0.10, abs=0.04)
    tested = {f.feature for f in result.features}
    assert tested == {"num", "flat", "colour"}  # the others cannot be compared
    # a single row, an all-NaN numeric column, mixed objects: findings, not exceptions
    odd = pd.DataFrame({"num": [1.0], "colour": [3], "flat": [np.nan], "typed": [{"a": 1}]})
    check_profile(profile, odd)


def test_prediction_drift_counts_for_the_dataset() -> None:
    rng = np.random.default_rng(4)
    ref = pd.DataFrame({"x": rng.normal(size=4_000), "prediction": rng.random(4_000) < 0.2})
    profile = profile_frame(ref, prediction="prediction")
    assert profile.prediction is not None and profile.prediction.kind == "categorical"
    cur = pd.DataFrame({"x": rng.normal(size=800), "prediction": rng.random(800) < 0.6})
    result = check_profile(profile, cur)
    assert result.prediction is not None and result.prediction.drifted
    assert result.drifted and result.drifted_features == []
    same = pd.DataFrame({"x": rng.normal(size=800), "prediction": rng.random(800) < 0.2})
    assert not check_profile(profile, same).drifted


def test_detect_on_frames_refuses_bad_input() -> None:
    detector = ProfileDetector()
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(OpsloopError, match="reference window is empty"):
        detector.detect(frame.iloc[:0], frame)
    with pytest.raises(OpsloopError, match="current window is empty"):
        detector.detect(frame, frame.iloc[:0])
    with pytest.raises(OpsloopError, match="must be a pandas DataFrame, got list"):
        detector.detect([1, 2], frame)  # type: ignore[arg-type]
    with pytest.raises(OpsloopError, match="'b' missing from the reference window"):
        detector.detect(frame, frame, columns=["a", "b"])
    with pytest.raises(OpsloopError, match="not in the reference profile"):
        detector.check(profile_frame(frame), frame, columns=["zz"])

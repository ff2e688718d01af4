"""Reference profiles: exact counts, quantile edges, categories, streaming in chunks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.datasource import DataSource, open_source
from opsloop.errors import OpsloopError
from opsloop.profiles import (
    ReferenceProfile,
    build_profile,
    frame_chunks,
    profile_frame,
)
from opsloop.project import Project


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 20_000
    data = pd.DataFrame(
        {
            "x": rng.normal(10, 2, n),
            "count": rng.integers(0, 6, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.3,
            "when": pd.date_range("2026-01-01", periods=n, freq="min"),
        }
    )
    data.loc[rng.random(n) < 0.1, "x"] = np.nan
    data.loc[5, "x"] = np.inf  # not a value: counted as missing
    data.loc[rng.random(n) < 0.05, "colour"] = None
    return data


def test_numeric_column_counts_every_value_once(frame: pd.DataFrame) -> None:
    profile = profile_frame(frame, bins=20)
    x = profile.columns["x"]
    values = frame["x"].to_numpy()
    finite = values[np.isfinite(values)]
    assert (x.count, x.missing) == (len(finite), len(values) - len(finite))
    assert sum(x.counts) == x.count and len(x.counts) == len(x.edges) + 1
    assert sum(x.sums) == pytest.approx(finite.sum())
    assert (x.mean, x.std) == pytest.approx((finite.mean(), finite.std()))
    assert (x.min, x.max) == (finite.min(), finite.max())
    # quantile edges: about equal counts per bin, right-closed bins
    inner = np.array(x.counts[1:-1])
    assert inner.min() > 0.9 * len(finite) / 20 and inner.max() < 1.1 * len(finite) / 20
    edges = np.array(x.edges)
    assert x.counts[1] == int(((finite > edges[0]) & (finite <= edges[1])).sum())


def test_few_distinct_values_are_profiled_exactly(frame: pd.DataFrame) -> None:
    count = profile_frame(frame).columns["count"]
    assert count.discrete and count.edges == [0, 1, 2, 3, 4, 5]
    expected = frame["count"].value_counts().sort_index().tolist()
    assert count.counts == [*expected, 0]  # the last bin: above the reference's maximum


def test_categories_booleans_and_skipped_columns(frame: pd.DataFrame) -> None:
    profile = profile_frame(frame)
    colour = profile.columns["colour"]
    assert colour.kind == "categorical"
    assert colour.categories == frame["colour"].value_counts().to_dict()
    assert list(colour.categories) == ["red", "green", "blue"]  # most frequent first
    assert colour.missing == int(frame["colour"].isna().sum())
    assert profile.columns["flag"].categories.keys() == {"True", "False"}
    assert profile.skipped == {"when": "date/time column"} and "when" not in profile.columns


def test_rare_categories_go_to_other() -> None:
    values = ["a"] * 50 + ["b"] * 30 + [f"r{i}" for i in range(20)]
    column = profile_frame(pd.DataFrame({"c": values}), max_categories=3).columns["c"]
    assert list(column.categories)[:2] == ["a", "b"] and len(column.categories) == 3
    assert column.other == 19 and column.distinct == 22
    assert column.count == 100


def test_streaming_in_chunks_past_the_sample_matches_counting_everything(
    frame: pd.DataFrame,
) -> None:
    """Edges come from a uniform sample; counts and statistics still cover every row."""
    data = frame[["x", "count", "colour"]]
    chunks = frame_chunks(data, chunk_rows=3_000)
    calls = []

    def counted() -> object:
        calls.append(1)
        return chunks()

    streamed = build_profile(counted, sample_rows=5_000, bins=20, progress=lambda rows: None)
    assert len(calls) == 2  # two passes: edges from the sample, then every row counted
    whole = profile_frame(data, bins=20)
    x, full = streamed.columns["x"], whole.columns["x"]
    assert sum(x.counts) == full.count and x.missing == full.missing
    assert (x.mean, x.std) == pytest.approx((full.mean, full.std))
    edges = np.array(x.edges)
    values = data["x"].to_numpy()
    finite = values[np.isfinite(values)]
    assert (
        x.counts
        == np.bincount(np.searchsorted(edges, finite, "left"), minlength=len(edges) + 1).tolist()
    )
    # a 5,000-row sample puts the edges close to the exact quantiles
    assert np.abs(edges[1:-1] - np.array(full.edges)[1:-1]).max() < 0.25
    assert streamed.columns["colour"].categories == whole.columns["colour"].categories
    assert streamed.rows == whole.rows == len(frame)


def test_json_round_trip_and_malformed_files(frame: pd.DataFrame) -> None:
    profile = profile_frame(frame.drop(columns="when"))
    text = json.dumps(profile.to_dict(), allow_nan=False)
    again = ReferenceProfile.from_dict(json.loads(text))
    assert again.to_dict() == profile.to_dict()
    with pytest.raises(OpsloopError, match="not an opsloop profile"):
        ReferenceProfile.from_dict({"format": "something else"})
    broken = profile.to_dict()
    broken["columns"]["x"]["counts"] = [1, 2]
    with pytest.raises(OpsloopError, match="malformed: counts must have one more entry"):
        ReferenceProfile.from_dict(broken)


def test_bad_input_is_one_line() -> None:
    with pytest.raises(OpsloopError, match="no rows to profile"):
        profile_frame(pd.DataFrame({"a": []}))
    with pytest.raises(OpsloopError, match="lacks column"):
        profile_frame(pd.DataFrame({"a": [1.0]}), columns=["b"])
    all_missing = profile_frame(pd.DataFrame({"a": [np.nan, np.nan]})).columns["a"]
    assert (all_missing.count, all_missing.missing, all_missing.edges) == (0, 2, [])


def test_files_stream_in_chunks(tmp_path: Path, frame: pd.DataFrame) -> None:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "files"\n')
    project = Project.open(tmp_path, environ={}, start=False)
    data = frame[["x", "count", "colour"]]
    data.to_csv(tmp_path / "ref.csv", index=False)
    data.to_parquet(tmp_path / "ref.parquet")
    for name in ("ref.csv", "ref.parquet"):
        source = open_source(project, str(tmp_path / name), chunk_rows=4_000)
        assert isinstance(source, DataSource)
        sizes = [len(c) for c in source.chunks()]
        assert sizes[0] == 4_000 and sum(sizes) == len(data)
        assert source.lineage["kind"] == "file" and len(source.lineage["sha256"]) == 64
        built = build_profile(source.chunks, sample_rows=10_000)
        assert built.columns["x"].count == int(np.isfinite(data["x"]).sum())
    with pytest.raises(OpsloopError, match=r"for a warehouse table write duckdb:raw\.orders"):
        open_source(project, "raw.orders")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(OpsloopError, match="neither CSV nor Parquet"):
        open_source(project, str(tmp_path / "notes.json"))

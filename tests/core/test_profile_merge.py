"""Profiles built from partitions (scanned apart, merged) equal the one-process profile:
the same sample, edges, counts, categories; mean, std and bin sums up to rounding."""

from __future__ import annotations

from functools import reduce

import numpy as np
import pandas as pd
import pytest

from opsloop.errors import OpsloopError
from opsloop.profiles import (
    PartialProfile,
    ReferenceProfile,
    add_bins,
    build_profile,
    count_bins,
    finish_profile,
    frame_chunks,
    merge_partials,
    needs_second_pass,
    partial_edges,
    scan_partial,
)


def data(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.lognormal(0, 1, n),
            "k": rng.integers(0, 5, n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "x"] = np.nan
    return frame


def from_partitions(frame: pd.DataFrame, cuts: list[int], sample_rows: int) -> ReferenceProfile:
    """What a cluster does: pass one per partition, merge, edges, pass two per partition."""
    bounds = list(zip([0, *cuts], [*cuts, len(frame)], strict=True))
    pieces = [frame.iloc[a:b] for a, b in bounds]
    partials = [
        scan_partial(frame_chunks(p, 700)(), first_row=a, sample_rows=sample_rows)
        for p, (a, _) in zip(pieces, bounds, strict=True)
    ]
    merged = reduce(lambda x, y: merge_partials(x, y, sample_rows), reversed(partials))
    edges = partial_edges(merged, 20)
    if needs_second_pass(merged):
        for piece in pieces:
            add_bins(merged, count_bins(frame_chunks(piece, 999)(), edges))
    return finish_profile(merged, bins=20, source={"kind": "frame"})


@pytest.mark.parametrize("sample_rows", [50_000, 3_000])  # every row sampled, then not
def test_a_profile_merged_from_partitions_equals_the_one_process_profile(
    sample_rows: int,
) -> None:
    frame = data(12_000)
    one = build_profile(frame_chunks(frame, 1_000), bins=20, sample_rows=sample_rows)
    merged = from_partitions(frame, [2_500, 2_501, 9_000], sample_rows)
    assert merged.rows == one.rows == 12_000
    for name in ("x", "k", "colour"):
        a, b = one.columns[name].to_dict(), merged.columns[name].to_dict()
        for key in ("mean", "std", "sums"):
            np.testing.assert_allclose(b.pop(key, 0.0), a.pop(key, 0.0), rtol=1e-12)
        assert a == b, name  # edges, counts, min, max, missing, categories: exact
    assert one.columns["x"].edges and not one.columns["x"].discrete
    assert one.columns["k"].discrete and len(one.columns["k"].edges) == 5


def test_merging_an_empty_partition_changes_nothing_and_mixed_kinds_are_refused() -> None:
    frame = data(2_000)
    part = scan_partial([frame], sample_rows=500)
    assert merge_partials(part, PartialProfile(), 500) is part
    as_text = frame.assign(k=frame["k"].astype(str))
    other = scan_partial([as_text], first_row=2_000, sample_rows=500)
    with pytest.raises(OpsloopError, match="column 'k' is numeric in one part"):
        merge_partials(part, other, 500)

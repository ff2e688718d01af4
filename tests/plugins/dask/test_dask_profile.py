"""Reference profiles built on a real two-worker LocalCluster equal the one-process profile
(edges, counts, categories exactly; mean, std and bin sums up to rounding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dask_testkit import MODEL, features, scored_frame

from opsloop import reference
from opsloop.profiles import ReferenceProfile
from opsloop.reference import profile_version


def same_profile(local: ReferenceProfile, built: ReferenceProfile) -> None:
    assert built.rows == local.rows and list(built.columns) == list(local.columns)
    pairs = [(local.columns[n], built.columns[n]) for n in local.columns]
    if local.prediction is not None or built.prediction is not None:
        assert local.prediction is not None and built.prediction is not None
        pairs.append((local.prediction, built.prediction))
    for a_col, b_col in pairs:
        a, b = a_col.to_dict(), b_col.to_dict()
        for key in ("mean", "std", "sums"):
            np.testing.assert_allclose(b.pop(key, 0.0), a.pop(key, 0.0), rtol=1e-9)
        assert a == b  # edges, counts, missing, min, max, categories: exact


def write_parts(frame: pd.DataFrame, folder: Path, rows: int, row_group: int) -> None:
    folder.mkdir()
    for i, start in enumerate(range(0, len(frame), rows)):
        frame.iloc[start : start + rows].to_parquet(
            folder / f"{i}.parquet", row_group_size=row_group, index=False
        )


def on_cluster(make_project: Any, cluster: Any) -> Any:
    return make_project(f'\n[plugin.dask]\naddress = "{cluster.scheduler_address}"\n')


def test_a_profile_built_on_the_cluster_equals_the_local_profile(
    make_project: Any, cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reference, "SAMPLE_ROWS", 20_000)  # past the sample: two passes
    frame = scored_frame(46_000, seed=3)
    write_parts(frame, tmp_path / "parts", 16_000, 6_000)
    frame.to_parquet(tmp_path / "all.parquet", index=False)
    _, local = profile_version(make_project(), MODEL, "1", source=str(tmp_path / "all.parquet"))
    project = on_cluster(make_project, cluster)
    seen: list[int] = []
    record, built = profile_version(
        project, MODEL, "1", source=str(tmp_path / "parts"),
        progress=lambda rows, total: seen.append(rows),
    )  # fmt: skip
    assert built.source["engine"] == "dask" and built.source["files"] == 3
    assert built.rows == 46_000 and sum(seen) == 2 * 46_000  # two passes, every row
    assert list(built.columns) == features()  # the model's signature
    assert built.prediction is not None and sum(built.prediction.counts) == 46_000
    same_profile(local, built)
    assert (project.home / record.path).exists()


def test_hook_scale_out_profiles_missing_values_and_categories_like_the_local_path(
    make_project: Any, cluster: Any, tmp_path: Path
) -> None:
    frame = scored_frame(20_000, seed=4)
    frame["score"] = frame["mean_texture"].where(frame["row_id"] % 97 != 0)
    frame["size"] = np.where(frame["mean_radius"] > 14, "large", "small")
    frame.loc[frame["row_id"] % 89 == 0, "size"] = None
    write_parts(frame, tmp_path / "parts", 7_000, 2_000)
    frame.to_parquet(tmp_path / "all.parquet", index=False)
    columns = ["mean_radius", "score", "size", "row_id"]
    project = on_cluster(make_project, cluster)
    engine = project.hook.scale_out(project=project)
    assert engine is not None and engine.name == "dask"
    _, built = profile_version(
        project, MODEL, "1", source=str(tmp_path / "parts"), columns=columns, predict=False
    )
    local_project = make_project()
    assert local_project.hook.scale_out(project=local_project) is None  # off by default
    _, local = profile_version(
        local_project, MODEL, "1", source=str(tmp_path / "all.parquet"), columns=columns,
        predict=False,
    )  # fmt: skip
    assert built.prediction is None and built.columns["score"].missing == 207
    assert built.columns["size"].missing == 225 and set(built.columns["size"].categories) == {
        "large", "small"
    }  # fmt: skip
    same_profile(local, built)


def test_profiling_a_subset_of_columns_still_profiles_the_prediction(
    make_project: Any, cluster: Any, tmp_path: Path
) -> None:
    """`--columns` names what is profiled; the model still scores with all its own inputs
    (it used to be handed only the chosen columns, locally and on the cluster)."""
    frame = scored_frame(12_000, seed=5)
    write_parts(frame, tmp_path / "parts", 5_000, 2_500)
    frame.to_parquet(tmp_path / "all.parquet", index=False)
    columns = features()[:2]
    _, local = profile_version(
        make_project(), MODEL, "1", source=str(tmp_path / "all.parquet"), columns=columns
    )
    _, built = profile_version(
        on_cluster(make_project, cluster), MODEL, "1", source=str(tmp_path / "parts"),
        columns=columns,
    )  # fmt: skip
    for profile in (local, built):
        assert list(profile.columns) == columns
        assert profile.prediction is not None and sum(profile.prediction.counts) == 12_000
    same_profile(local, built)

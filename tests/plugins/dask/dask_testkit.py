"""Test kit for the dask plugin tests: the data sets and the model names."""

from __future__ import annotations

import io
from importlib import resources

import pandas as pd

MODEL = "breast_cancer"
TARGET = "target"
#: a four-feature model, so a test can score many rows cheaply
TINY = "tiny"
TINY_FEATURES = ["a", "b", "c", "d"]


def tiny_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=TINY_FEATURES)
    frame.insert(0, "row_id", np.arange(rows, dtype=np.int64))
    return frame


def breast_cancer() -> pd.DataFrame:
    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    return pd.read_csv(io.StringIO(text))


def features() -> list[str]:
    return [c for c in breast_cancer().columns if c != TARGET]


def scored_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows resampled from the breast-cancer features, with a row id first."""
    base = breast_cancer()[features()]
    frame = base.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    frame.insert(0, "row_id", range(rows))
    return frame

"""The reference profile of a model version: built from its training data (the lineage the
registry recorded) or from any table or file, with the model's predictions, and stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, one_line

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.datasource import DataSource
    from opsloop.profiles import ReferenceProfile
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef, ProfileRecord

logger = logging.getLogger("opsloop.monitor")

#: The column a served window (and a profile's source, when scored) holds the output in.
PREDICTION = "prediction"
#: Rows sampled for the quantile edges; past that, profiling reads the source twice.
SAMPLE_ROWS = 200_000


def version_for(project: Project, model: str, version: str | None = None) -> ModelVersionRef:
    """``version`` of ``model`` (a number, ``@alias`` or ``latest``); by default the
    ``[monitor] alias`` holder (the served version), else the newest version."""
    from opsloop.registry import get_store

    store = get_store(project)
    if version:
        return store.resolve(model, version)
    try:
        return store.resolve(model, project.config.monitor.alias)
    except OpsloopError:
        return store.resolve(model, "latest")


def features_of(ref: ModelVersionRef) -> list[str]:
    """The model's input columns, from its signature ([] when it has none)."""
    inputs = (ref.signature or {}).get("inputs") or []
    return [str(c["name"]) for c in inputs if isinstance(c, dict) and c.get("name")]


def training_data(project: Project, ref: ModelVersionRef) -> tuple[str, str]:
    """(``dataset.table``, target column) recorded when ``ref`` was registered ('' if none)."""
    from opsloop.registry import get_store, governance, has_governance

    store = get_store(project)
    if not has_governance(store):  # a store that keeps no provenance knows no training data
        return "", ""
    recorded = (governance(store).provenance(ref) or {}).get("training_data") or {}
    return str(recorded.get("dataset") or ""), str(recorded.get("target") or "")


def profile_version(
    project: Project,
    model: str,
    version: str | None = None,
    *,
    source: str | None = None,
    columns: list[str] | None = None,
    predict: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> tuple[ProfileRecord, ReferenceProfile]:
    """Profile ``source`` (default: the version's training data) for ``model`` ``version``.

    The features are ``columns``, else the model's signature, else every column but the
    target. Unless the source already has a ``prediction`` column, each chunk is scored
    with the model (loaded hash-checked) so the prediction is profiled too; ``predict``
    False skips that. ``progress(rows, total)`` is called per chunk read.
    """
    from opsloop.datasource import TABLE_PREFIX, open_source
    from opsloop.profile_store import save_profile
    from opsloop.profiles import build_profile

    ref = version_for(project, model, version)
    dataset, target = training_data(project, ref)
    if source is None:
        if not dataset:
            raise OpsloopError(
                f"model '{model}' version {ref.version} records no training data; pass the "
                "reference with --from duckdb:dataset.table or a CSV/Parquet file"
            )
        source = TABLE_PREFIX + dataset
    data = open_source(project, source)
    features = list(columns or features_of(ref))
    settings = project.config.monitor
    lineage: dict[str, Any] = {**data.lineage, "source": data.name}
    chunks = data.chunks
    prediction: str | None = None
    first = next(iter(data.chunks()), None)
    if first is None or len(first) == 0:
        raise OpsloopError(f"{data.name} has no rows to profile")
    if not features:
        features = [str(c) for c in first.columns if c not in (target, PREDICTION)]
    if PREDICTION in first.columns:
        prediction = PREDICTION
    elif predict:
        scored = _scored_chunks(project, ref, data, features, first)
        if scored is not None:
            chunks, prediction = scored, PREDICTION
        else:
            lineage["prediction"] = "not profiled: the model could not score the data"
    total = None
    if data.rows is not None:  # a second pass reads everything again past the sample size
        total = data.rows if data.rows <= SAMPLE_ROWS else 2 * data.rows

    def tick(rows: int) -> None:
        if progress is not None:
            progress(rows, total)

    profile = build_profile(
        chunks,
        columns=features,
        prediction=prediction,
        bins=settings.bins,
        max_categories=settings.max_categories,
        sample_rows=SAMPLE_ROWS,
        progress=tick,
        source=lineage,
    )
    profile.model, profile.version = ref.name, ref.version
    return save_profile(project, profile), profile


def _scored_chunks(
    project: Project,
    ref: ModelVersionRef,
    data: DataSource,
    features: list[str],
    first: pd.DataFrame,
) -> Callable[[], Iterator[pd.DataFrame]] | None:
    """Chunks with the model's output added as ``prediction``; None when it cannot score."""
    from opsloop.registry import get_store

    missing = [f for f in features if f not in first.columns]
    if missing:
        return None  # build_profile names the missing columns
    try:
        scorer = get_store(project).load(ref)
        _predict(scorer, first.iloc[:5], features)
    except OpsloopError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that cannot score: profile without it
        logger.warning("profile of %s/%s: no prediction (%s)", ref.name, ref.version, one_line(exc))
        return None

    def chunks() -> Iterator[pd.DataFrame]:
        for chunk in data.chunks():
            yield chunk.assign(**{PREDICTION: _predict(scorer, chunk, features)})

    return chunks


def _predict(scorer: Any, chunk: pd.DataFrame, features: list[str]) -> Any:
    import numpy as np

    output = np.asarray(scorer.predict(chunk[features]))
    if output.ndim == 2 and output.shape[1] == 1:
        output = output[:, 0]
    if output.ndim != 1 or len(output) != len(chunk):
        raise ValueError(f"the model returned an output of shape {output.shape}, not one per row")
    return output


def profile_on_register(project: Project, ref: ModelVersionRef) -> ProfileRecord | None:
    """After a registration: profile the training data the version records, if any.

    Never raises: the version is registered either way. A failure is logged as a warning
    (no state changed, so nothing is audited); a later check says there is no profile and
    how to build one.
    """
    if not project.config.monitor.profile_on_register:
        return None
    try:
        dataset, _ = training_data(project, ref)
        if not dataset:
            logger.info("no reference profile for %s/%s: no training data", ref.name, ref.version)
            return None
        record, _ = profile_version(project, ref.name, ref.version)
        return record
    except Exception as exc:  # noqa: BLE001 - a registration never fails on its profile
        logger.warning(
            "no reference profile for %s/%s: %s; build one with `opsloop monitor profile %s "
            "--version %s --from ...`",
            ref.name,
            ref.version,
            one_line(exc),
            ref.name,
            ref.version,
        )
        return None

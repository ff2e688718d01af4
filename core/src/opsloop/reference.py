"""The reference profile of a model version: built from its training data (the lineage the
registry recorded) or from any table or file, with the model's predictions, and stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, one_line

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.datasource import DataSource
    from opsloop.interfaces import ScaleOut
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
    engine = project.hook.scale_out(project=project)
    files = parquet_files(source) if engine is not None else None
    if engine is not None and files:
        profile = _profile_on(engine, project, ref, files, source, columns, predict, progress)
        return save_profile(project, profile), profile
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
    elif predict:  # the model scores its own inputs, whichever columns are profiled
        scored = _scored_chunks(project, ref, data, features_of(ref) or features, first)
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


def parquet_files(spec: str) -> list[Path] | None:
    """The Parquet files ``spec`` names (a file, or a folder of them), else None."""
    from opsloop.datasource import PARQUET_SUFFIXES, TABLE_PREFIX

    if spec.startswith(TABLE_PREFIX):
        return None
    path = Path(spec).expanduser().resolve()  # workers may run in another folder
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if p.is_file()) or None
    return [path] if path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES else None


def load_scorer(project_path: str, ref: ModelVersionRef) -> Any:
    """Open the project at ``project_path`` and load ``ref`` (on a cluster worker)."""
    from opsloop.project import Project
    from opsloop.registry import get_store

    project = Project.open(project_path, start=False)
    try:
        return get_store(project).load(ref)
    finally:
        project.close()


def predict_rows(features: tuple[str, ...], scorer: Any, chunk: pd.DataFrame) -> Any:
    """The model's output for ``chunk``, one value per row (what a profile records)."""
    return _predict(scorer, chunk, list(features))


def _files_lineage(spec: str, files: list[Path]) -> dict[str, Any]:
    from opsloop.batch_output import files_fingerprint
    from opsloop.datasource import file_sha256

    path = Path(spec).expanduser().resolve()
    if not path.is_dir():
        return {"kind": "file", "path": str(path), "bytes": path.stat().st_size,
                "sha256": file_sha256(path)}  # fmt: skip
    # names, sizes and times: hashing every byte would be a pass over the data of its own
    return {"kind": "files", "path": str(path), "files": len(files),
            "bytes": sum(f.stat().st_size for f in files),
            "fingerprint": files_fingerprint(files, path)}  # fmt: skip


def _profile_on(
    engine: ScaleOut,
    project: Project,
    ref: ModelVersionRef,
    files: list[Path],
    source: str,
    columns: list[str] | None,
    predict: bool,
    progress: Callable[[int, int | None], None] | None,
) -> ReferenceProfile:
    """:func:`profile_version`'s work on a cluster engine (Parquet input only)."""
    from functools import partial

    import pyarrow.parquet as pq

    from opsloop.interfaces import ProfileJob

    _, target = training_data(project, ref)
    try:
        handle = pq.ParquetFile(files[0])
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        first = next(handle.iter_batches(batch_size=1_000), None)
    except Exception as exc:  # noqa: BLE001 - any reader error becomes one line
        raise OpsloopError(f"cannot read '{source}': {one_line(exc)}") from None
    frame = first.to_pandas() if first is not None else None
    if frame is None or not rows:
        raise OpsloopError(f"{source} has no rows to profile")
    features = list(columns or features_of(ref))
    if not features:
        features = [str(c) for c in frame.columns if c not in (target, PREDICTION)]
    lineage: dict[str, Any] = {**_files_lineage(source, files), "source": source}
    prediction: str | None = None
    load_model = scorer_of = None
    inputs = features_of(ref) or features  # the model scores its own inputs
    if PREDICTION in frame.columns:
        prediction = PREDICTION
    elif predict and all(f in frame.columns for f in inputs):
        from opsloop.registry import get_store

        try:
            _predict(get_store(project).load(ref), frame.iloc[:5], inputs)
        except OpsloopError:
            raise
        except Exception as exc:  # noqa: BLE001 - a model that cannot score: no prediction
            logger.warning("profile of %s/%s: no prediction (%s)", ref.name, ref.version,
                           one_line(exc))  # fmt: skip
            lineage["prediction"] = "not profiled: the model could not score the data"
        else:
            where = Path(project.config.source)
            home = str((where if where.is_file() else project.root).resolve())
            prediction = PREDICTION
            load_model = partial(load_scorer, home, ref)
            scorer_of = partial(predict_rows, tuple(inputs))
    total = rows if rows <= SAMPLE_ROWS else 2 * rows
    settings = project.config.monitor
    job = ProfileJob(
        files=tuple(str(f) for f in files),
        columns=tuple(features),
        prediction=prediction,
        load_model=load_model,
        predict=scorer_of,
        bins=settings.bins,
        max_categories=settings.max_categories,
        sample_rows=SAMPLE_ROWS,
        progress=(lambda n: progress(n, total)) if progress is not None else None,
    )
    profile = engine.build_profile(job)
    profile.source = {**lineage, "engine": engine.name}
    profile.model, profile.version = ref.name, ref.version
    return profile


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

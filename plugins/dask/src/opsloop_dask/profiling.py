"""Reference profiles on a Dask client: pass one per partition (the core's
:func:`~opsloop.profiles.scan_partial`), merged on the client as parts finish; edges from
the merged sample; pass two per partition for the bin counts when the sample was not
every row. The result equals the one-process profile (see ``PartialProfile``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop_dask.parts import Partition, plan

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from distributed import Client

    from opsloop.interfaces import ProfileJob
    from opsloop.profiles import PartialProfile, ReferenceProfile

#: rows a profiling task reads at once (row groups are never cut), and per chunk
PARTITION_ROWS = 500_000
CHUNK_ROWS = 100_000


def _chunks(
    part: Partition,
    model: tuple[Callable[[], Any], str, Callable[[Any, Any], Any]] | None,
    prediction: str | None,
) -> Iterator[pd.DataFrame]:
    from opsloop_dask.tasks import cached_model, read_partition

    frame = read_partition(part)
    scorer = cached_model(model[0], model[1]) if model is not None else None
    for start in range(0, len(frame), CHUNK_ROWS):
        chunk = frame.iloc[start : start + CHUNK_ROWS]
        if scorer is not None and model is not None and prediction:
            chunk = chunk.assign(**{prediction: model[2](scorer, chunk)})
        yield chunk


def scan_partition(
    part: Partition,
    columns: tuple[str, ...],
    prediction: str | None,
    model: tuple[Callable[[], Any], str, Callable[[Any, Any], Any]] | None,
    sample_rows: int,
    seed: int,
) -> PartialProfile:
    """Pass one over a partition (on a worker)."""
    from opsloop.profiles import scan_partial

    return scan_partial(
        _chunks(part, model, prediction),
        columns=list(columns),
        prediction=prediction,
        first_row=part.first_row,
        sample_rows=sample_rows,
        seed=seed,
    )


def count_partition(
    part: Partition,
    edges: dict[str, np.ndarray],
    prediction: str | None,
    model: tuple[Callable[[], Any], str, Callable[[Any, Any], Any]] | None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pass two over a partition (on a worker): bin counts and sums per numeric column."""
    from opsloop.profiles import count_bins

    return count_bins(_chunks(part, model, prediction), edges)


def _run(
    client: Client, tasks: list[tuple[Any, ...]], in_flight: int
) -> Iterator[tuple[Partition, Any]]:
    """(partition, result) of ``client.submit(*task)`` (a task's second item is its
    partition) in completion order, at most ``in_flight`` tasks submitted at a time."""
    from distributed import as_completed

    pending = iter(tasks)
    parts: dict[Any, tuple[Any, Partition]] = {}

    def submit(task: tuple[Any, ...]) -> Any:
        future = client.submit(*task, pure=False)
        parts[future.key] = (future, task[1])
        return future

    first = [submit(t) for _, t in zip(range(max(1, in_flight)), pending, strict=False)]
    if not first:
        return
    running = as_completed(first, loop=client.loop)
    try:
        for future in running:
            _, part = parts.pop(future.key)
            result = future.result()  # a task's error is raised here, as it was raised
            task = next(pending, None)
            if task is not None:
                running.add(submit(task))
            yield part, result
    except BaseException:
        client.cancel([f for f, _ in parts.values()])
        raise


def build_profile(client: Client, job: ProfileJob, in_flight: int) -> ReferenceProfile:
    """The profile of ``job.files`` built on the cluster."""
    from opsloop.errors import OpsloopError
    from opsloop.profiles import (
        PartialProfile,
        add_bins,
        finish_profile,
        merge_partials,
        needs_second_pass,
        partial_edges,
    )
    from opsloop_dask.tasks import model_key

    if job.bins < 2:
        raise OpsloopError(f"a profile needs at least 2 bins, got {job.bins}")
    partitions = plan([Path(f) for f in job.files], PARTITION_ROWS)
    model = None
    if job.load_model is not None and job.predict is not None:
        model = (job.load_model, model_key(job.load_model), job.predict)

    def tick(part: Partition) -> None:
        if job.progress is not None:
            job.progress(part.rows)

    scans = [
        (scan_partition, p, job.columns, job.prediction, model, job.sample_rows, job.seed)
        for p in partitions
    ]
    merged = PartialProfile()
    for part, scanned in _run(client, scans, in_flight):
        merged = merge_partials(merged, scanned, job.sample_rows)
        tick(part)
    if merged.rows == 0:
        raise OpsloopError("the reference data has no rows to profile")
    edges = partial_edges(merged, job.bins)
    if needs_second_pass(merged):
        shared = client.scatter([edges], broadcast=True)[0]
        counts = [(count_partition, p, shared, job.prediction, model) for p in partitions]
        for part, counted in _run(client, counts, in_flight):
            add_bins(merged, counted)
            tick(part)
    return finish_profile(
        merged, prediction=job.prediction, bins=job.bins, max_categories=job.max_categories
    )

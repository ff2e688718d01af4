"""Batch scoring on a Dask client: one task per unfinished partition, a bounded number in
flight, the manifest updated by the client as each part lands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.batch_output import files_fingerprint, finish_output, open_output, write_manifest
from opsloop_dask import parts as P

if TYPE_CHECKING:
    from distributed import Client

    from opsloop.interfaces import BatchJob, BatchOutcome


def score_batch(client: Client, job: BatchJob, in_flight: int) -> BatchOutcome:
    """Score ``job.input`` into ``job.output``, skipping the parts a run already finished."""
    from distributed import as_completed

    from opsloop.interfaces import BatchOutcome
    from opsloop_dask.tasks import model_key, score_partition

    files = P.input_files(job.input)
    partitions = P.plan(files, job.chunk_rows or P.DEFAULT_PARTITION_ROWS)
    ref = job.ref
    identity = {
        "input": job.input,
        "fingerprint": files_fingerprint(files, Path(job.input).resolve()),
        "model": {"name": ref.name, "version": ref.version, "uri": ref.uri},
        "partitioning": P.layout(partitions),
        "engine": "dask",
    }
    output = Path(job.output)
    manifest = open_output(output, identity, "input, model version or partitioning")
    done: dict[str, Any] = manifest["parts"]
    todo = [p for p in partitions if p.name not in done]
    skipped = len(partitions) - len(todo)
    total = sum(p.rows for p in partitions)
    rows_done = sum(int(v["rows"]) for k, v in done.items())
    if job.progress is not None:
        job.progress(rows_done, total)
    key = model_key(job.load_model)
    where = str(output.resolve())
    pending = iter(todo)
    by_key: dict[Any, tuple[Any, P.Partition]] = {}

    def submit(part: P.Partition) -> Any:
        future = client.submit(
            score_partition, part, where, job.load_model, key, job.score, pure=False
        )
        by_key[future.key] = (future, part)
        return future

    first = [submit(part) for _, part in zip(range(max(1, in_flight)), pending, strict=False)]
    running = as_completed(first, loop=client.loop)

    def submit_next() -> None:
        part = next(pending, None)
        if part is not None:
            running.add(submit(part))

    written = 0
    try:
        for future in running:
            _, part = by_key.pop(future.key)
            rows = int(future.result())  # a task's error is raised here, as it was raised
            done[part.name] = {"rows": rows, "first_row": part.first_row}
            manifest["complete"] = False
            write_manifest(output, manifest)
            written += 1
            rows_done += rows
            if job.progress is not None:
                job.progress(rows_done, total)
            submit_next()
    except BaseException:
        for future, _ in by_key.values():
            future.cancel()
        raise
    finish_output(output, manifest, {p.name for p in partitions})
    return BatchOutcome(
        rows=int(manifest["rows"]), parts=len(partitions), skipped=skipped, written=written
    )

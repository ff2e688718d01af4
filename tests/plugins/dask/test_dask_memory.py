"""A dataset larger than a worker's memory limit is scored on a LocalCluster partition by
partition: no worker dies or restarts, none nears the pause line, every row lands once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pyarrow.parquet as pq
import pytest
from dask_testkit import TINY, tiny_frame
from opsloop_dask.engine import worker_environ
from opsloop_dask.settings import Settings
from opsloop_fastapi.batch import score_anywhere

from opsloop.registry import get_store

#: a worker holds about 350 MiB once MLflow and the model are loaded and about 500 MiB
#: after scoring (pandas, pyarrow and their pools), whatever the data's size
LIMIT = 2**30
FILES, ROWS, PAD = 8, 1_250_000, 10  # 10 million rows x 15 eight-byte columns: 1.2 GB


@pytest.fixture
def small_workers() -> Iterator[Any]:
    """Two worker processes of LIMIT bytes each, set up as the plugin sets up its own."""
    from distributed import Client, LocalCluster

    environ = worker_environ(Settings())
    entries = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
    with dask.config.set(entries), LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=LIMIT, host="127.0.0.1",
        scheduler_port=0, dashboard_address="127.0.0.1:0",
    ) as cluster, Client(cluster, set_as_default=False) as client:  # fmt: skip
        yield cluster, client


def worker_state(dask_worker: Any) -> dict[str, Any]:
    memory = dask_worker.monitor.quantities["memory"]
    return {"pid": os.getpid(), "peak": max(memory), "status": dask_worker.status.name}


def test_a_dataset_larger_than_the_worker_memory_limit_is_scored_without_worker_deaths(
    make_project: Any, small_workers: Any, tmp_path: Path
) -> None:
    cluster, client = small_workers
    data = tmp_path / "in"
    data.mkdir()
    for i in range(FILES):
        frame = tiny_frame(ROWS, seed=i)
        frame["row_id"] += i * ROWS
        for k in range(PAD):  # carried through to the output, as real id/context columns are
            frame[f"pad{k}"] = frame["row_id"] * (k + 1.5)
        frame.to_parquet(data / f"part-{i}.parquet", row_group_size=250_000, index=False)
    assert FILES * ROWS * (5 + PAD) * 8 > LIMIT
    before = client.run(worker_state)
    project = make_project(f'\n[plugin.dask]\naddress = "{cluster.scheduler_address}"\n')
    ref = get_store(project).resolve(TINY, "champion")
    result, engine = score_anywhere(project, ref, data, tmp_path / "out", chunk_rows=250_000)
    assert engine == "dask" and result.rows == FILES * ROWS and result.parts == 40
    after = client.run(worker_state)
    assert sorted(after) == sorted(before)  # the same two workers...
    assert [s["pid"] for s in after.values()] == [s["pid"] for s in before.values()]  # alive
    for state in after.values():
        assert state["status"] == "running" and state["peak"] < 0.8 * LIMIT, state
    files = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in files) == FILES * ROWS
    last = pq.read_table(files[-1], columns=["row_id"]).column(0).to_pylist()
    assert last[-1] == FILES * ROWS - 1 and len(set(last)) == len(last)

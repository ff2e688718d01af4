"""The scale-out engine: a Dask client (a LocalCluster, or a scheduler at an address) that
scores partitioned Parquet and builds reference profiles."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from opsloop.environ import temporary_environ
from opsloop.errors import OpsloopError, one_line

if TYPE_CHECKING:
    from distributed import Client

    from opsloop.interfaces import BatchJob, BatchOutcome, ProfileJob
    from opsloop.profiles import ReferenceProfile
    from opsloop_dask.settings import Settings


def worker_environ(settings: Settings) -> dict[str, str]:
    """The ``distributed.nanny.pre-spawn-environ`` entries this plugin sets."""
    environ: dict[str, str] = {}
    if settings.malloc_trim_threshold:
        environ["MALLOC_TRIM_THRESHOLD_"] = str(settings.malloc_trim_threshold)
    if settings.malloc_mmap_threshold:
        environ["MALLOC_MMAP_THRESHOLD_"] = str(settings.malloc_mmap_threshold)
    return environ


class DaskEngine:
    """Batch scoring and profiles on Dask; connects only when asked to work."""

    name = "dask"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        """A client of the configured scheduler, or of a LocalCluster for this run."""
        import dask
        from distributed import Client, LocalCluster

        settings = self.settings
        if settings.address:
            try:
                client = Client(
                    settings.address, timeout=settings.connect_timeout_seconds, set_as_default=False
                )
            except (OSError, TimeoutError) as exc:
                raise OpsloopError(
                    f"cannot reach the Dask scheduler at {settings.address} "
                    f"(plugin.dask.address): {one_line(exc)}"
                ) from None
            with client:
                yield client
            return
        environ = worker_environ(settings)
        entries = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in environ.items()}
        memory: str | int = settings.memory_limit
        # also in os.environ while the cluster runs: a nanny takes a pre-spawn variable from
        # os.environ before its config, and copies its values there when it spawns, so a
        # value an earlier cluster of this process left (or the shell's) would win otherwise
        with (
            dask.config.set(entries),
            temporary_environ(environ),
            LocalCluster(
                n_workers=settings.n_workers,
                threads_per_worker=settings.threads_per_worker,
                processes=True,
                memory_limit=memory,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",  # loopback, any free port (8787 may be taken)
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster, set_as_default=False) as client,
        ):
            yield client

    def score_batch(self, job: BatchJob) -> BatchOutcome:
        from opsloop_dask.scoring import score_batch

        with self.client() as client:
            return score_batch(client, job, self._in_flight(client))

    def build_profile(self, job: ProfileJob) -> ReferenceProfile:
        from opsloop_dask.profiling import build_profile

        with self.client() as client:
            return build_profile(client, job, self._in_flight(client))

    def _in_flight(self, client: Client) -> int:
        if self.settings.partitions_in_flight:
            return self.settings.partitions_in_flight
        threads = sum(client.nthreads().values()) or 1
        return 2 * threads

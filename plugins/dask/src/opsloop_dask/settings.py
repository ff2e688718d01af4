"""Settings of the dask plugin: the ``[plugin.dask]`` table of opsloop.toml.

Off by default. ``address = "tcp://host:8786"`` connects to a running cluster;
``enabled = true`` without an address starts a LocalCluster for the run.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/:]+(:\d{1,5})?$")
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([kKMGT]i?B|B)?$")
#: glibc malloc in the LocalCluster's workers: free memory up to 64 MiB stays at the top
#: of the heap for the next partition, arrays past 16 MiB are mmapped and go back to the
#: kernel when freed (10 million rows scored 1.25x faster than with Dask's 64 KiB here)
DEFAULT_TRIM = 64 * 2**20
DEFAULT_MMAP = 16 * 2**20


class Settings(BaseModel):
    """Where batch scoring and profile building run when they run on Dask."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # true: a LocalCluster per run when no address is given
    address: str = ""  # tcp://host:8786 of a running scheduler (implies enabled)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # the LocalCluster (ignored with an address): worker processes, threads, memory each
    n_workers: int = Field(default=2, ge=1, le=256)
    threads_per_worker: int = Field(default=1, ge=1, le=256)
    memory_limit: str = "auto"  # per worker: "auto", "2GiB", "300MB", or bytes
    # glibc malloc in LocalCluster workers, set through distributed.nanny.pre-spawn-environ
    # (docs/plugins/dask.md, "Malloc on the workers"); 0: leave the variable alone
    malloc_trim_threshold: int = Field(default=DEFAULT_TRIM, ge=0)
    malloc_mmap_threshold: int = Field(default=DEFAULT_MMAP, ge=0)
    partitions_in_flight: int = Field(default=0, ge=0)  # tasks queued at once; 0: 2 x threads

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value and not _ADDRESS.match(value):
            raise ValueError(f"'{value}' is not a scheduler address like tcp://host:8786")
        return value

    @field_validator("memory_limit")
    @classmethod
    def _memory(cls, value: Any) -> str:
        text = str(value).strip()
        if text in ("auto", "0"):
            return text
        if not _SIZE.match(text):
            raise ValueError(f"'{text}' is not a size like 2GiB or 300MB")
        return text

    @property
    def active(self) -> bool:
        """True when batch scoring and profiles should run on Dask."""
        return self.enabled or bool(self.address)

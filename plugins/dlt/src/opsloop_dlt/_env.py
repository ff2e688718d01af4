"""dlt's process settings, applied before dlt is first imported: offline and contained."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: dlt sends anonymous usage events to dltHub by default; opsloop never phones home.
TELEMETRY_ENV = "RUNTIME__DLTHUB_TELEMETRY"

#: dlt settings that hold only while one of our pipelines runs. Completed load packages keep
#: their metadata but not a second copy of the data. (Not pipeline-scoped variables: those
#: would start with OPSLOOP_, which opsloop's own config reads.)
#: Arrow batches get dlt's ``_dlt_load_id`` column (lineage, and undoing a failed load) from
#: opsloop itself (``pipeline.with_load_id``), not from dlt, whose helper imports pandas.
RUN_ENV = {
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID": "false",
}


def configure_dlt() -> None:
    """Turn dlt's telemetry off; call before ``import dlt`` (cheap, idempotent)."""
    os.environ[TELEMETRY_ENV] = "false"


@contextmanager
def run_settings() -> Iterator[None]:
    """Apply :data:`RUN_ENV` for the duration of one pipeline run, then restore."""
    from opsloop.environ import temporary_environ

    with temporary_environ(RUN_ENV):
        yield

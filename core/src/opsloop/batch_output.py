"""A batch-scoring output folder: parts written one at a time, and the manifest that says
which are finished, so a re-run skips them (shared by the local and the cluster scorers)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from opsloop.errors import OpsloopError

#: The file in an output folder that lists its finished parts.
MANIFEST = "_manifest.json"


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The folder's manifest, None when it has none; one-line error when it is unreadable."""
    path = output / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OpsloopError(f"{path} is not a readable manifest ({exc}); remove {output}") from None
    return data if isinstance(data, dict) else None


def write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically (a crash leaves the old one or the new one)."""
    tmp = output / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, output / MANIFEST)


def part_rows(path: Path) -> int | None:
    """Rows of a finished Parquet part, None when it is missing or unreadable."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # noqa: BLE001 - an unreadable part is redone
        return None

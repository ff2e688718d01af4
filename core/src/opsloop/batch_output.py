"""A batch-scoring output folder: parts written one at a time, and the manifest that says
which are finished, so a re-run skips them (shared by the local and the cluster scorers)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from opsloop.errors import OpsloopError

#: The file in an output folder that lists its finished parts.
MANIFEST = "_manifest.json"
#: A finished part's name.
PART = "part-{:05d}.parquet"
#: What a run may leave in its folder: parts, their hidden temporary files (the local
#: scorer's ``.NAME.tmp``, a cluster worker's ``.NAME.<token>.tmp``) and the manifest's.
PART_FILE = re.compile(
    r"^(part-\d{5}\.parquet|\.part-\d{5}\.parquet(\.[0-9a-f]+)?\.tmp|\._manifest\.json\.tmp)$"
)


def files_fingerprint(files: list[Path], root: Path) -> str:
    """Names (relative to ``root``), sizes and modification times of the input files: what
    tells a re-run over the same input from one over changed files, without reading them."""
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        name = file.relative_to(root).as_posix() if file != root else file.name
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()


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


def open_output(output: Path, identity: dict[str, Any], differs: str) -> dict[str, Any]:
    """The manifest to continue: the folder's own if it is this run's, else a fresh one.

    Output of another run (``identity`` differs; ``differs`` names what may have) or a
    folder that is no batch output is refused; parts the manifest lists but that are
    missing or cut short are dropped from it, to be written again.
    """
    manifest = read_manifest(output)
    if manifest is not None:
        if any(manifest.get(k) != v for k, v in identity.items()):
            raise OpsloopError(
                f"{output} holds the output of another run ({differs} differ); pick another "
                "--output or remove that folder"
            )
    elif output.exists() and any(not PART_FILE.match(p.name) for p in output.iterdir()):
        raise OpsloopError(
            f"{output} exists and is not a batch output folder (no {MANIFEST}); pick another "
            "--output"
        )
    output.mkdir(parents=True, exist_ok=True)
    manifest = manifest or {**identity, "parts": {}}
    parts: dict[str, Any] = manifest.setdefault("parts", {})
    for name, info in list(parts.items()):
        if part_rows(output / name) != info.get("rows"):
            del parts[name]
    return manifest


def finish_output(output: Path, manifest: dict[str, Any], expected: Collection[str]) -> None:
    """Remove strays (temporary files, parts past the input's end); mark the run complete."""
    for stray in output.iterdir():
        if PART_FILE.match(stray.name) and stray.name not in expected:
            stray.unlink(missing_ok=True)
    manifest["parts"] = {k: v for k, v in sorted(manifest["parts"].items()) if k in expected}
    manifest["complete"] = True
    manifest["rows"] = sum(int(v["rows"]) for v in manifest["parts"].values())
    write_manifest(output, manifest)

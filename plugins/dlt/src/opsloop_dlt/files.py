"""Landing-file listing and the incremental plan: which files a load must read.

A file is identified by its path relative to the folder and fingerprinted by its
modification time (ns) and size. The fingerprints of loaded files live in the dlt
pipeline state, which dlt commits with the load package and restores from the warehouse,
so a failed load leaves them unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsloop.errors import OpsloopError


@dataclass(frozen=True)
class LandingFile:
    """One file in a landing folder."""

    path: Path
    relative: str
    fingerprint: str  # "<mtime_ns>:<size>"


@dataclass
class FilePlan:
    """What one load reads (``to_load``) and the fingerprints it leaves behind (``after``)."""

    files: list[LandingFile]
    to_load: list[LandingFile]
    after: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.to_load


def list_files(folder: Path, pattern: str) -> list[LandingFile]:
    """The files matching ``pattern`` in ``folder``, sorted by relative path."""
    if not folder.exists():
        raise OpsloopError(
            f"landing folder {folder} does not exist; create it or fix the source's path"
        )
    if not folder.is_dir():
        raise OpsloopError(f"landing path {folder} is not a folder; point the source at a folder")
    found: list[LandingFile] = []
    for path in sorted(folder.glob(pattern)):
        if not path.is_file() or path.name.startswith("."):
            continue
        stat = path.stat()
        relative = path.relative_to(folder).as_posix()
        found.append(LandingFile(path, relative, f"{stat.st_mtime_ns}:{stat.st_size}"))
    if not found:
        raise OpsloopError(
            f"no files match '{pattern}' in landing folder {folder}; add files or fix 'glob'"
        )
    return found


def plan_load(
    files: list[LandingFile], previous: Mapping[str, str], write_disposition: str
) -> FilePlan:
    """New and changed files for append/merge; every file, if anything changed, for replace.

    A replace load rebuilds the table from the whole folder, so a removed file counts as a
    change there; append and merge keep the fingerprints of files that went away.
    """
    current = {f.relative: f.fingerprint for f in files}
    if write_disposition == "replace":
        changed = current != dict(previous)
        return FilePlan(files, list(files) if changed else [], current)
    to_load = [f for f in files if previous.get(f.relative) != f.fingerprint]
    return FilePlan(files, to_load, {**previous, **current})

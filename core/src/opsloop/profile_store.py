"""Reference profiles stored with model versions: a JSON file per profile under the project
home, its SHA-256 in a :class:`~opsloop.records.ProfileRecord` and in the audit log, and
checked before every use.

``<home>/profiles/<model>/<version>/<profile id>.json``; the newest record of a version
names the profile its checks use, so building a new one never rewrites an old one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import IntegrityError, OpsloopError
from opsloop.names import safe_name
from opsloop.profiles import ReferenceProfile
from opsloop.records import ProfileRecord

if TYPE_CHECKING:
    from opsloop.project import Project

FOLDER = "profiles"


def save_profile(project: Project, profile: ReferenceProfile) -> ProfileRecord:
    """Write ``profile`` (its ``model`` and ``version`` set) and record and audit its hash."""
    if not profile.model or not profile.version:
        raise OpsloopError("a stored profile needs the model name and version it belongs to")
    model = safe_name(profile.model, "model name")
    relative = Path(FOLDER, model, safe_name(profile.version, "version"), f"{profile.id}.json")
    target = project.path(*relative.parts)
    body = json.dumps(profile.to_dict(), sort_keys=True, indent=1, allow_nan=False).encode()
    temporary = target.with_name(f".{target.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)
    digest = hashlib.sha256(body).hexdigest()
    record = ProfileRecord(
        model=profile.model,
        version=profile.version,
        profile_id=profile.id,
        path=relative.as_posix(),
        sha256=digest,
        rows=profile.rows,
        columns=list(profile.columns),
        prediction=profile.prediction is not None,
        source=dict(profile.source),
        actor=project.audit.actor,
    )
    project.emit(
        record,
        "monitor.profile",
        f"{profile.model}/{profile.version}",
        after={"id": profile.id, "record": record.id, "path": record.path, "sha256": digest},
        detail={"rows": profile.rows, "columns": len(profile.columns), "source": profile.source},
    )
    return record


def profile_records(
    project: Project, model: str, version: str | None = None
) -> list[ProfileRecord]:
    """Stored profiles of ``model`` (one version, or all), oldest first."""
    return [
        r
        for r in project.records.list(ProfileRecord)
        if r.model == model and (version is None or r.version == version)
    ]


def load_profile(project: Project, model: str, version: str) -> ReferenceProfile:
    """The newest stored profile of ``model`` version ``version``, its SHA-256 checked."""
    records = profile_records(project, model, version)
    if not records:
        raise OpsloopError(
            f"no reference profile for model '{model}' version {version}; build one with "
            f"`opsloop monitor profile {model} --version {version} --from duckdb:dataset.table`"
        )
    return read_profile(project, records[-1])


def read_profile(project: Project, record: ProfileRecord) -> ReferenceProfile:
    """The profile ``record`` names; IntegrityError when its file changed or is gone."""
    path = project.home / record.path
    rebuild = f"rebuild it with `opsloop monitor profile {record.model} --version {record.version}`"
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"the reference profile of {record.model}/{record.version} is missing: {path}; "
            + rebuild
        ) from None
    found = hashlib.sha256(body).hexdigest()
    if found != record.sha256:
        raise IntegrityError(
            f"the reference profile of {record.model}/{record.version} was changed: {path} has "
            f"SHA-256 {found[:12]}..., recorded {record.sha256[:12]}...; {rebuild}"
        )
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise IntegrityError(f"{path} is not JSON ({exc}); {rebuild}") from None
    profile = ReferenceProfile.from_dict(data, str(path))
    if (profile.model, profile.version) != (record.model, record.version):
        raise IntegrityError(
            f"{path} holds the profile of {profile.model}/{profile.version}, "
            f"not {record.model}/{record.version}; {rebuild}"
        )
    return profile

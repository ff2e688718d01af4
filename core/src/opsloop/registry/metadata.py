"""Governance metadata (owner, intended use, ...) on a model or one of its versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from opsloop.registry.access import get_store, governance

if TYPE_CHECKING:
    from opsloop.project import Project


def set_metadata(
    project: Project, name: str, version: str | None, values: Mapping[str, str]
) -> dict[str, str]:
    """Set governance metadata (owner, intended_use, ...) on a model or one version; audited."""
    store = get_store(project)
    if version is not None:
        version = store.resolve(name, version).version
    else:
        store.resolve(name, "latest")  # the model must exist
    clean = {str(k): str(v).strip() for k, v in values.items()}
    gov = governance(store, "model metadata")
    before = gov.get_metadata(name, version)
    target = f"{name}/{version}" if version else name
    project.audit.append(  # the intent first: no change is ever stored unaudited
        "model.metadata",
        target,
        before={k: before.get(k) for k in clean},
        after=clean,
    )
    try:
        gov.set_metadata(name, version, clean)
    except Exception as exc:
        project.audit.append("model.metadata.failed", target, detail={"error": str(exc)[:500]})
        raise
    return {**before, **clean}


def metadata(project: Project, name: str, version: str | None = None) -> dict[str, str]:
    """A version's governance metadata over its model's (the version's value wins)."""
    store = get_store(project)
    get = governance(store, "model metadata").get_metadata
    merged = dict(get(name, None))
    if version is not None:
        merged.update({k: v for k, v in get(name, version).items() if v})
    return merged

"""A model's story: versions from the registry, its changes from the audit log, alias stacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.registry.access import get_store, governance
from opsloop.registry.rollback import alias_moves, alias_stack

if TYPE_CHECKING:
    from opsloop.project import Project


def history(project: Project, name: str) -> dict[str, Any]:
    """Versions (from the registry), alias moves and other changes (from the audit log)."""
    store = get_store(project)
    refs = store.list_versions(name)
    registered_by: dict[str, str] = {}
    events: list[dict[str, Any]] = []
    for entry in project.audit.entries():
        action = str(entry.get("action", ""))
        target = str(entry.get("target", ""))
        if not action.startswith("model."):
            continue
        if not (target == name or target.startswith((f"{name}/", f"{name}@"))):
            continue
        if action == "model.register":
            registered_by[target.split("/", 1)[1]] = str(entry.get("actor", ""))
        detail = entry.get("detail") or {}
        events.append(
            {
                "time": entry.get("time"),
                "actor": entry.get("actor"),
                "action": action,
                "target": target,
                "before": entry.get("before"),
                "after": entry.get("after"),
                "reason": detail.get("reason", "") if isinstance(detail, dict) else "",
            }
        )
    versions = []
    for ref in refs:
        who = registered_by.get(ref.version)
        if who is None:
            try:
                who = governance(store, "provenance").provenance(ref).get("registered_by") or ""
            except OpsloopError:
                who = ""
        versions.append(
            {
                "version": ref.version,
                "registered_at": ref.created_at,
                "registered_by": who,
                "aliases": list(ref.aliases),
                "run_id": ref.run_id,
                "metrics": ref.metrics,
                "uri": ref.uri,
            }
        )
    aliases = sorted(
        {m.alias for m in alias_moves(project, name)} | {a for r in refs for a in r.aliases}
    )
    return {
        "model": name,
        "versions": versions,
        "events": events,
        "alias_history": {a: alias_stack(project, name, a) for a in aliases},
    }

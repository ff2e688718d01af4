"""The alias history replayed from AliasMove records, and rollback over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
from opsloop.registry.access import (
    check_integrity,
    clean_alias,
    current_version,
    get_store,
    moves_locked,
    require_model,
)
from opsloop.registry.promotion import emit_move

if TYPE_CHECKING:
    from opsloop.project import Project
    from opsloop.records import AliasMove, ModelVersionRef


def alias_moves(project: Project, name: str, alias: str | None = None) -> list[AliasMove]:
    """The recorded moves of ``name``'s aliases (or one alias), oldest first."""
    from opsloop.records import AliasMove

    wanted = clean_alias(alias) if alias else None
    return [
        m
        for m in project.records.list(AliasMove)
        if m.model == name and (wanted is None or m.alias == wanted)
    ]


def alias_stack(project: Project, name: str, alias: str) -> list[str]:
    """The versions ``alias`` held, oldest first, replayed from the AliasMove records.

    A move pushes its version (and the version it left, when the history did not know
    it: an alias set outside opsloop); a rollback pops.
    """
    stack: list[str] = []
    for move in alias_moves(project, name, alias):
        if move.removed:  # the alias was removed: its history starts again
            stack.clear()
            continue
        if move.rollback:
            if stack and stack[-1] == move.from_version:
                stack.pop()
            if not stack or stack[-1] != move.to_version:
                stack.append(move.to_version)
            continue
        if move.from_version is not None and (not stack or stack[-1] != move.from_version):
            stack.append(move.from_version)
        stack.append(move.to_version)
    return stack


def rollback_target(project: Project, name: str, alias: str = "champion") -> str | None:
    """The version a rollback of ``alias`` would go back to, or None."""
    current = current_version(project, name, alias)
    if current is None:
        return None
    stack = alias_stack(project, name, alias)
    if not stack or stack[-1] != current:
        stack.append(current)  # moved outside opsloop: the registry is the truth
    return stack[-2] if len(stack) >= 2 else None


def rollback(
    project: Project, name: str, *, alias: str = "champion", reason: str = ""
) -> ModelVersionRef:
    """Move ``alias`` back to the version it held before, in one audited step.

    A second rollback goes one further back. Gates do not run (the target held the alias
    before), but its artifacts must pass their hash check. No earlier version is a
    one-line OpsloopError, and nothing moves.
    """
    from opsloop.records import AliasMove

    store = get_store(project)
    alias = clean_alias(alias)
    with moves_locked(project):
        current = current_version(project, name, alias)
        if current is None:
            require_model(store, name)
            raise OpsloopError(
                f"model '{name}' has no alias '{alias}', so there is nothing to roll back"
            )
        target = rollback_target(project, name, alias)
        if target is None:
            raise OpsloopError(
                f"{name}@{alias} is at version {current} and has no earlier version in this "
                "project's alias history to roll back to; nothing moved"
            )
        ref = store.resolve(name, target)
        check_integrity(project, store, ref)
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=current,
            to_version=target,
            reason=reason.strip(),
            rollback=True,
            actor=project.audit.actor,
        )
        emit_move(
            project, store, move, "model.rollback", {"reason": reason.strip(), "move": move.id}
        )
    ref = store.resolve(name, target)
    project.hook.after_promote(project=project, ref=ref, alias=alias, previous=current)
    return ref


def remove_alias(project: Project, name: str, alias: str, *, reason: str = "") -> str | None:
    """Remove ``alias`` from ``name`` (retire a challenger); the version it held, or None.

    Recorded as an AliasMove (``removed``) and audited as ``model.alias.remove``; an alias
    that is not set changes nothing. The store must implement the optional ModelStore
    method ``delete_alias(name, alias) -> previous version or None`` (opsloop-mlflow does).
    """
    from opsloop.records import AliasMove

    store = get_store(project)
    alias = clean_alias(alias)
    delete = getattr(store, "delete_alias", None)
    if not callable(delete):
        raise OpsloopError(
            f"the registry plugin '{getattr(store, 'name', type(store).__name__)}' cannot "
            f"remove an alias (no delete_alias method); move {name}@{alias} instead"
        )
    with moves_locked(project):
        current = current_version(project, name, alias)
        if current is None:
            return None
        previous = delete(name, alias) or current
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=previous,
            to_version="",
            reason=reason.strip(),
            removed=True,
            actor=project.audit.actor,
        )
        try:
            project.emit(move)
        except BaseException:
            store.set_alias(name, alias, previous)
            raise
        project.audit.append(
            "model.alias.remove",
            f"{name}@{alias}",
            before={"version": previous},
            after={"version": None},
            detail={"reason": reason.strip(), "move": move.id},
        )
    return previous

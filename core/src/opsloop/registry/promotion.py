"""Alias moves behind the promotion gates: each move is gated, recorded as an AliasMove and
audited, refused or forced."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.registry.access import (
    check_integrity,
    clean_alias,
    current_version,
    get_store,
    moves_locked,
)

if TYPE_CHECKING:
    from opsloop.interfaces import CheckResult, ModelStore
    from opsloop.project import Project
    from opsloop.records import AliasMove, ModelVersionRef


def _gate_name(gate: Any) -> str:
    return str(getattr(gate, "name", None) or getattr(gate, "__name__", type(gate).__name__))


def run_gates(project: Project, ref: ModelVersionRef, alias: str) -> list[CheckResult]:
    """Every promotion gate's verdict on moving ``alias`` to ``ref``.

    A gate returning None does not guard this alias and is left out; a gate that raises
    an OpsloopError (a holdout that cannot be read, a tampered artifact) is a failed check.
    """
    return _gate_results(project, ref, alias)[0]


def _gate_results(
    project: Project, ref: ModelVersionRef, alias: str
) -> tuple[list[CheckResult], int]:
    """The gates' verdicts and how many gates the plugins registered."""
    from opsloop.interfaces import CheckResult

    results: list[CheckResult] = []
    count = 0
    for gate in project.collect("register_promotion_gates"):
        count += 1
        try:
            result = gate(ref, alias)
        except OpsloopError as exc:
            result = CheckResult(_gate_name(gate), False, f"error: {exc}")
        if result is not None:
            results.append(result)
    return results, count


def _move(
    project: Project,
    name: str,
    alias: str,
    version: str,
    *,
    force_reason: str,
    action: str,
) -> ModelVersionRef:
    """Gates, then the move, the AliasMove record, the audit entry and after_promote."""
    from opsloop.records import AliasMove

    store = get_store(project)
    alias = clean_alias(alias)
    reason = (force_reason or "").strip()
    with moves_locked(project):
        ref = store.resolve(name, version)
        previous = current_version(project, name, alias)
        if previous == ref.version:
            return ref  # already there: nothing moves, nothing to audit
        check_integrity(project, store, ref)
        results, registered = _gate_results(project, ref, alias)
        failed = [r for r in results if not r.ok]
        checks = [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results]
        if failed and not reason:
            project.audit.append(
                f"{action}.refused",
                f"{name}@{alias}",
                before={"version": previous},
                after={"version": ref.version},
                detail={"failed": [f"{r.name}: {r.detail}" for r in failed], "gates": checks},
            )
            raise OpsloopError(
                f"promotion of {name} version {ref.version} to '{alias}' refused by gate "
                + "; ".join(f"'{r.name}' ({r.detail})" for r in failed)
                + "; the alias did not move (override: --force --reason TEXT, audited)",
                exit_code=1,
            )
        forced = bool(failed)
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=previous,
            to_version=ref.version,
            reason=reason,
            forced=forced,
            actor=project.audit.actor,
            checks=checks,
        )
        emit_move(
            project,
            store,
            move,
            f"{action}.forced" if forced else action,
            detail={
                "gates": checks
                or (f"no gate guards @{alias}" if registered else "no gate configured"),
                "forced": forced,
                "reason": reason,
                "move": move.id,
            },
        )
    ref = store.resolve(name, ref.version)
    project.hook.after_promote(project=project, ref=ref, alias=alias, previous=previous)
    return ref


def emit_move(
    project: Project,
    store: ModelStore,
    move: AliasMove,
    action: str,
    detail: dict[str, Any],
) -> None:
    """Audit the move (first), move the alias, then commit the AliasMove record, all in one
    record-store transaction (:meth:`Project.recording`); if storing fails after the alias
    moved, put the alias back so history and registry agree."""
    moved = False
    try:
        with project.recording(
            move,
            action,
            f"{move.model}@{move.alias}",
            before={"version": move.from_version},
            after={"version": move.to_version},
            detail=detail,
        ):
            store.set_alias(move.model, move.alias, move.to_version)
            moved = True
    except BaseException:
        if moved and move.from_version is not None:
            store.set_alias(move.model, move.alias, move.from_version)
        raise


def set_alias(
    project: Project, name: str, alias: str, version: str, *, force_reason: str = ""
) -> ModelVersionRef:
    """Move ``alias`` to ``version`` after the promotion gates pass; audited either way.

    A failed gate refuses the move (the alias stays where it was) unless ``force_reason``
    is given, which is recorded in the audit log as a forced move.
    """
    return _move(project, name, alias, version, force_reason=force_reason, action="model.alias")


def promote(
    project: Project,
    name: str,
    version: str,
    *,
    alias: str = "champion",
    force_reason: str = "",
) -> ModelVersionRef:
    """Promote ``version`` to ``alias`` (default champion) through the promotion gates.

    A failed gate raises OpsloopError (exit code 1) naming the check and its figures, and
    nothing moves. ``force_reason`` overrides failed gates; the move is audited as forced
    with the reason. Artifacts that fail their hash check are never promoted.
    """
    return _move(project, name, alias, version, force_reason=force_reason, action="model.promote")

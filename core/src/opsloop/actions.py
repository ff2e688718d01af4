"""Destructive actions behind an approval: rollback, promote, disable a model.

A runbook, a widget or a rule never changes production directly: it builds an
:class:`Action` (what it would do, to what, from which state to which) and hands it to
:func:`perform`. Without an approval the action is a *dry run*: nothing changes, the plan
is returned and audited as ``action.dry_run``. With one (a person's name or id, given as
an explicit runbook parameter under papermill or by a click in a widget) the approval is
recorded first — an :class:`~opsloop.records.Approval` record and an ``action.approve``
audit entry naming who approved — and then the action runs and its own state change is
audited as usual.

Approvals are only as strong as the identity given: under papermill the approver is a
parameter (``approved_by``), so the audit log says who *claimed* to approve; teams that
need more pair it with the CLI's admin credentials or JupyterLab's login (the approver
the widget records is the Jupyter user).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from opsloop.errors import OpsloopError, ParameterError
from opsloop.records import Approval

if TYPE_CHECKING:
    from opsloop.project import Project

Outcome = Literal["dry_run", "done", "failed"]


@dataclass
class Action:
    """One change a person must approve: what, to what, and from which state to which."""

    name: str  # "model.rollback", "model.promote", "model.disable", ...
    target: str  # "fraud@champion"
    summary: str  # one line for a person: "roll fraud@champion back from v3 to v2"
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    run: Callable[[], Any] | None = field(default=None, repr=False)
    destructive: bool = True
    reason: str = ""


@dataclass
class ActionResult:
    """What :func:`perform` did: a dry run (nothing changed), done, or failed."""

    action: Action
    outcome: Outcome
    approved_by: str = ""
    approval_id: str = ""
    value: Any = None
    error: str = ""

    @property
    def changed(self) -> bool:
        return self.outcome == "done"

    def describe(self) -> str:
        """One line: what happened, or what would have."""
        if self.outcome == "dry_run":
            return f"dry run: would {self.action.summary} (approve to apply)"
        if self.outcome == "done":
            return f"done: {self.action.summary} (approved by {self.approved_by})"
        return f"failed: {self.action.summary}: {self.error}"


def perform(project: Project, action: Action, *, approved_by: str = "") -> ActionResult:
    """Apply ``action`` when it is approved (or not destructive); otherwise a dry run.

    The approval is recorded before anything changes, so the audit log shows who approved
    a change even if the change then fails. A failure is returned, not raised, so a
    runbook can report it; an OpsloopError from the action becomes its one-line ``error``.
    """
    approver = approved_by.strip()
    if action.destructive and not approver:
        project.audit.append(
            "action.dry_run",
            action.target,
            before=action.before,
            after=action.after,
            detail={"action": action.name, "summary": action.summary, "reason": action.reason},
        )
        return ActionResult(action, "dry_run")
    if action.run is None:
        raise ParameterError(f"action '{action.name}' has nothing to run")
    approval = Approval(
        action=action.name,
        target=action.target,
        summary=action.summary,
        approved_by=approver or project.audit.actor,
        before=action.before,
        after=action.after,
        reason=action.reason,
    )
    project.emit(
        approval,
        "action.approve",
        action.target,
        before=action.before,
        after=action.after,
        detail={
            "action": action.name,
            "approval": approval.id,
            "approved_by": approval.approved_by,
            "reason": action.reason,
        },
    )
    try:
        value = action.run()
    except OpsloopError as exc:
        return ActionResult(action, "failed", approval.approved_by, approval.id, error=str(exc))
    return ActionResult(action, "done", approval.approved_by, approval.id, value=value)


# ------------------------------------------------------------------------- registry actions
def rollback_action(
    project: Project, model: str, alias: str = "champion", reason: str = ""
) -> Action:
    """Roll ``model@alias`` back to the version it held before (see registry.rollback)."""
    from opsloop import registry

    current = registry.current_version(project, model, alias)
    target = registry.rollback_target(project, model, alias)
    if current is None or target is None:
        raise OpsloopError(
            f"{model}@{alias} has no earlier version in this project's alias history to roll "
            "back to; nothing to approve"
        )
    return Action(
        name="model.rollback",
        target=f"{model}@{alias}",
        summary=f"roll {model}@{alias} back from version {current} to version {target}",
        before={"version": current},
        after={"version": target},
        run=lambda: registry.rollback(project, model, alias=alias, reason=reason),
        reason=reason,
    )


def promote_action(
    project: Project,
    model: str,
    version: str,
    alias: str = "champion",
    reason: str = "",
) -> Action:
    """Move ``model@alias`` to ``version`` through the promotion gates (registry.promote)."""
    from opsloop import registry

    ref = registry.get_store(project).resolve(model, version)
    current = registry.current_version(project, model, alias)
    return Action(
        name="model.promote",
        target=f"{model}@{alias}",
        summary=f"promote {model} version {ref.version} to @{alias}"
        + (f" (now version {current})" if current else ""),
        before={"version": current},
        after={"version": ref.version},
        run=lambda: registry.promote(project, model, ref.version, alias=alias),
        reason=reason,
    )


def disable_action(
    project: Project, model: str, alias: str = "champion", reason: str = ""
) -> Action:
    """Take ``model@alias`` out of service: remove the alias, so a server following it stops
    serving that version (see registry.remove_alias); a rollback or promote brings it back."""
    from opsloop import registry

    current = registry.current_version(project, model, alias)
    if current is None:
        raise OpsloopError(f"{model}@{alias} is not set, so there is nothing to disable")
    return Action(
        name="model.disable",
        target=f"{model}@{alias}",
        summary=f"disable {model}@{alias}: remove the alias from version {current}",
        before={"version": current},
        after={"version": None},
        run=lambda: registry.remove_alias(project, model, alias, reason=reason),
        reason=reason,
    )

"""Destructive actions behind an approval (opsloop.actions): a dry run unless approved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsloop import actions, hookimpl, registry
from opsloop.errors import OpsloopError
from opsloop.interfaces import TrainedModel
from opsloop.project import Project
from opsloop.records import AliasMove, Approval
from opsloop.testing import MemoryModelStore, make_project


class Registry:
    def __init__(self) -> None:
        self.store = MemoryModelStore()

    @hookimpl
    def model_store(self, project: Project) -> MemoryModelStore:
        return self.store


def model() -> TrainedModel:
    return TrainedModel(model="m", flavor="none", features=["x"], target="y")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = make_project(tmp_path, Registry())
    for _ in range(2):
        registry.register_model(project, "fraud", model(), {})
    registry.promote(project, "fraud", "1")
    registry.promote(project, "fraud", "2")
    return project


def audit(project: Project) -> list[dict[str, Any]]:
    return list(project.audit.entries())


def test_without_an_approval_a_rollback_is_a_dry_run_that_says_what_it_would_do(
    project: Project,
) -> None:
    action = actions.rollback_action(project, "fraud", reason="auc dropped")
    result = actions.perform(project, action)
    assert result.outcome == "dry_run" and not result.changed
    assert result.describe() == (
        "dry run: would roll fraud@champion back from version 2 to version 1 (approve to apply)"
    )
    assert registry.current_version(project, "fraud", "champion") == "2"  # nothing moved
    last = audit(project)[-1]
    assert last["action"] == "action.dry_run" and last["target"] == "fraud@champion"
    assert last["before"] == {"version": "2"} and last["after"] == {"version": "1"}
    assert project.records.list(Approval) == []


def test_an_approved_rollback_records_who_approved_before_it_moves(project: Project) -> None:
    result = actions.perform(
        project, actions.rollback_action(project, "fraud", reason="auc dropped"),
        approved_by="dana (on-call)",
    )  # fmt: skip
    assert result.outcome == "done" and result.approved_by == "dana (on-call)"
    assert registry.current_version(project, "fraud", "champion") == "1"
    (approval,) = project.records.list(Approval)
    assert (approval.action, approval.target, approval.approved_by) == (
        "model.rollback", "fraud@champion", "dana (on-call)",
    )  # fmt: skip
    names = [e["action"] for e in audit(project)]
    assert names[-2:] == ["action.approve", "model.rollback"]  # approval first, then the move
    assert audit(project)[-2]["detail"]["approval"] == approval.id
    assert project.records.list(AliasMove)[-1].rollback


def test_a_failed_action_is_returned_with_the_approval_still_recorded(project: Project) -> None:
    action = actions.promote_action(project, "fraud", "1")
    action.run = lambda: (_ for _ in ()).throw(OpsloopError("gate 'auc' refused it"))
    result = actions.perform(project, action, approved_by="dana")
    assert result.outcome == "failed" and result.error == "gate 'auc' refused it"
    assert [a.action for a in project.records.list(Approval)] == ["model.promote"]


def test_nothing_to_roll_back_is_one_clear_line(tmp_path: Path) -> None:
    project = make_project(tmp_path, Registry())
    registry.register_model(project, "fraud", model(), {})
    registry.promote(project, "fraud", "1")
    with pytest.raises(OpsloopError, match=r"no earlier version .* nothing to approve"):
        actions.rollback_action(project, "fraud")


def test_a_promotion_plan_names_both_versions(project: Project) -> None:
    registry.rollback(project, "fraud")
    action = actions.promote_action(project, "fraud", "2")
    assert action.summary == "promote fraud version 2 to @champion (now version 1)"
    assert actions.perform(project, action, approved_by="lee").changed
    assert registry.current_version(project, "fraud", "champion") == "2"


def test_disabling_a_model_needs_an_approval_and_removes_its_alias(project: Project) -> None:
    action = actions.disable_action(project, "fraud", reason="leaks PII")
    dry = actions.perform(project, action)
    assert dry.outcome == "dry_run" and registry.current_version(project, "fraud", "champion")
    done = actions.perform(project, actions.disable_action(project, "fraud"), approved_by="erin")
    assert done.outcome == "done" and done.value == "2"
    assert registry.current_version(project, "fraud", "champion") is None
    [approval] = project.records.list(Approval)
    assert (approval.action, approval.approved_by) == ("model.disable", "erin")
    assert project.records.list(AliasMove)[-1].removed
    actions_seen = [e["action"] for e in audit(project)]
    assert actions_seen.index("action.approve") < actions_seen.index("model.alias.remove")
    with pytest.raises(OpsloopError, match="nothing to disable"):
        actions.disable_action(project, "fraud")

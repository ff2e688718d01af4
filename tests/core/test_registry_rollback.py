"""Rollback over the alias history (AliasMove records) on the real MLflow store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_registry_kit as kit
from test_registry_kit import artifact_folder, good_model, lineage

from opsloop import hookimpl, registry
from opsloop.errors import IntegrityError, OpsloopError
from opsloop.project import Project
from opsloop.records import AliasMove

Factory = Callable[..., Project]
no_outbound_network = kit.no_outbound_network
project_factory = kit.project_factory


def _with_versions(project: Project, count: int) -> None:
    for _ in range(count):
        registry.register_model(project, "bc", good_model(), lineage())


def _champion(project: Project) -> str | None:
    return registry.current_version(project, "bc", "champion")


class Watcher:
    def __init__(self) -> None:
        self.moves: list[str] = []

    @hookimpl
    def after_promote(self, project: Any, ref: Any, alias: str, previous: Any) -> None:
        self.moves.append(f"{alias}:{previous}->{ref.version}")


def test_each_rollback_goes_one_further_back(project_factory: Factory) -> None:
    project = project_factory()
    watcher = Watcher()
    project.plugins.register(watcher)
    _with_versions(project, 3)
    for version in ("1", "2", "3"):
        registry.promote(project, "bc", version)
    assert registry.alias_stack(project, "bc", "champion") == ["1", "2", "3"]

    first = registry.rollback(project, "bc")
    assert (first.version, first.aliases) == ("2", ["champion"]) and _champion(project) == "2"
    second = registry.rollback(project, "bc", reason="v2 too slow")
    assert second.version == "1" and _champion(project) == "1"
    before = [e["seq"] for e in project.audit.entries()]
    with pytest.raises(OpsloopError) as info:
        registry.rollback(project, "bc")
    assert str(info.value) == (
        "bc@champion is at version 1 and has no earlier version in this project's alias "
        "history to roll back to; nothing moved"
    )
    assert [e["seq"] for e in project.audit.entries()] == before and _champion(project) == "1"

    rollbacks = [e for e in project.audit.entries() if e["action"] == "model.rollback"]
    assert [(e["before"], e["after"], e["actor"]) for e in rollbacks] == [
        ({"version": "3"}, {"version": "2"}, "alice"),
        ({"version": "2"}, {"version": "1"}, "alice"),
    ]
    assert rollbacks[1]["detail"]["reason"] == "v2 too slow"
    moves = project.records.list(AliasMove)
    assert [(m.from_version, m.to_version, m.rollback) for m in moves] == [
        (None, "1", False),
        ("1", "2", False),
        ("2", "3", False),
        ("3", "2", True),
        ("2", "1", True),
    ]  # fmt: skip — the whole history is kept, never rewritten
    assert registry.alias_stack(project, "bc", "champion") == ["1"]
    assert watcher.moves[-2:] == ["champion:3->2", "champion:2->1"]


def test_promote_after_rollback_pushes_again(project_factory: Factory) -> None:
    project = project_factory()
    _with_versions(project, 4)
    for version in ("1", "2", "3"):
        registry.promote(project, "bc", version)
    registry.rollback(project, "bc")
    registry.promote(project, "bc", "4")
    assert registry.alias_stack(project, "bc", "champion") == ["1", "2", "4"]
    assert registry.rollback(project, "bc").version == "2"
    assert registry.rollback_target(project, "bc") == "1"


def test_rollback_with_nothing_to_roll_back_is_a_clear_error(project_factory: Factory) -> None:
    project = project_factory()
    with pytest.raises(OpsloopError, match=r"model 'bc' is not registered .*models: none"):
        registry.rollback(project, "bc")
    _with_versions(project, 2)
    with pytest.raises(OpsloopError, match="model 'bc' has no alias 'champion', so there is"):
        registry.rollback(project, "bc")
    registry.promote(project, "bc", "2")
    with pytest.raises(OpsloopError, match="has no earlier version"):
        registry.rollback(project, "bc")
    assert _champion(project) == "2"
    assert [e["action"] for e in project.audit.entries()] == [
        "model.register", "model.register", "model.promote",
    ]  # fmt: skip


def test_an_alias_moved_outside_opsloop_is_respected(project_factory: Factory) -> None:
    project = project_factory()
    _with_versions(project, 3)
    registry.promote(project, "bc", "1")
    registry.get_store(project).set_alias("bc", "champion", "3")  # straight through MLflow
    assert registry.rollback_target(project, "bc") == "1"
    assert registry.rollback(project, "bc").version == "1"
    last = project.records.list(AliasMove)[-1]
    assert (last.from_version, last.to_version, last.rollback) == ("3", "1", True)
    # A later promotion records where the alias really was.
    registry.get_store(project).set_alias("bc", "champion", "2")
    registry.promote(project, "bc", "3")
    assert registry.alias_stack(project, "bc", "champion")[-2:] == ["2", "3"]
    assert registry.rollback(project, "bc").version == "2"


def test_rollback_refuses_a_tampered_target(project_factory: Factory) -> None:
    project = project_factory()
    _with_versions(project, 2)
    registry.promote(project, "bc", "1")
    registry.promote(project, "bc", "2")
    (artifact_folder(project, "bc", "1") / "conda.yaml").unlink()
    with pytest.raises(IntegrityError, match=r"bc v1: artifact file 'conda\.yaml' missing since"):
        registry.rollback(project, "bc")
    assert _champion(project) == "2" and len(project.records.list(AliasMove)) == 2


def test_rollback_of_a_named_alias(project_factory: Factory) -> None:
    project = project_factory()
    _with_versions(project, 2)
    registry.promote(project, "bc", "1", alias="challenger")
    registry.promote(project, "bc", "2", alias="@challenger")
    registry.promote(project, "bc", "2")
    assert registry.rollback(project, "bc", alias="challenger").version == "1"
    assert _champion(project) == "2"  # champion's history is separate
    with pytest.raises(OpsloopError, match="has no earlier version"):
        registry.rollback(project, "bc")


def test_history_joins_registry_versions_and_audited_changes(project_factory: Factory) -> None:
    project = project_factory()
    _with_versions(project, 2)
    registry.promote(project, "bc", "1")
    registry.promote(project, "bc", "2", force_reason="hotfix")
    registry.rollback(project, "bc", reason="latency")
    data = registry.history(project, "bc")
    assert [v["version"] for v in data["versions"]] == ["1", "2"]
    assert all(v["registered_by"] == "alice" for v in data["versions"])
    assert data["versions"][0]["aliases"] == ["champion"]
    assert data["versions"][0]["registered_at"] <= data["versions"][1]["registered_at"]
    assert [e["action"] for e in data["events"]] == [
        "model.register", "model.register", "model.promote", "model.promote", "model.rollback",
    ]  # fmt: skip
    assert data["events"][-1]["reason"] == "latency" and data["events"][-1]["actor"] == "alice"
    assert data["alias_history"] == {"champion": ["1"]}

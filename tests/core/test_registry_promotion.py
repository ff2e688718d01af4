"""Promotion gates on the real MLflow store: thresholds, regression, force, no partial state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import test_registry_kit as kit
from test_registry_kit import GATE, Tables, artifact_folder, bad_model, good_model, lineage

from opsloop import registry
from opsloop.errors import ConfigError, IntegrityError, OpsloopError
from opsloop.project import Project
from opsloop.records import AliasMove, Evidence

Factory = Callable[..., Project]
no_outbound_network = kit.no_outbound_network
project_factory = kit.project_factory


def _actions(project: Project) -> list[str]:
    return [e["action"] for e in project.audit.entries()]


def _champion(project: Project) -> str | None:
    return registry.current_version(project, "bc", "champion")


def _register(project: Project, *models: Any) -> None:
    for model in models:
        registry.register_model(project, "bc", model, lineage())


def test_promotion_through_a_passing_gate_is_recorded(project_factory: Factory) -> None:
    tables = Tables()
    project = project_factory(GATE, tables=tables)
    _register(project, good_model())
    ref = registry.promote(project, "bc", "1")
    assert ref.aliases == ["champion"] and _champion(project) == "1"
    assert tables.reads == ["raw.bc_holdout"]  # read once per promotion

    entry = list(project.audit.entries())[-1]
    assert (entry["action"], entry["target"], entry["actor"]) == (
        "model.promote", "bc@champion", "alice",
    )  # fmt: skip
    assert entry["before"] == {"version": None} and entry["after"] == {"version": "1"}
    gates = entry["detail"]["gates"]
    assert [g["name"] for g in gates] == [
        "threshold accuracy", "threshold roc_auc", "regression roc_auc",
    ]  # fmt: skip
    assert all(g["ok"] for g in gates)
    assert gates[1]["detail"].startswith("roc_auc 0.9")
    assert "on raw.bc_holdout (169 rows)" in gates[1]["detail"]
    assert gates[2]["detail"] == "no current @champion to compare with"

    (move,) = project.records.list(AliasMove)
    assert (move.model, move.alias, move.from_version, move.to_version) == (
        "bc", "champion", None, "1",
    )  # fmt: skip
    assert (move.forced, move.rollback, move.actor) == (False, False, "alice")
    (evidence,) = project.records.list(Evidence)
    assert (evidence.type, evidence.version, evidence.passed) == ("evaluation", "1", True)
    assert evidence.data["rows"] == 169 and evidence.data["metrics"]["roc_auc"] > 0.9
    assert evidence.data["holdout_load_ids"] == ["1732690200.000003"]

    # Promoting the version that already holds the alias changes nothing.
    before = _actions(project)
    assert registry.promote(project, "bc", "1").version == "1"
    assert _actions(project) == before


def test_failed_gate_names_the_checks_with_figures_and_moves_nothing(
    project_factory: Factory,
) -> None:
    project = project_factory(GATE)
    _register(project, good_model(), bad_model())
    registry.promote(project, "bc", "1")
    moves = len(project.records.list(AliasMove))
    with pytest.raises(OpsloopError) as info:
        registry.promote(project, "bc", "2")
    message = str(info.value)
    assert info.value.exit_code == 1 and "\n" not in message
    assert message.startswith("promotion of bc version 2 to 'champion' refused by gate ")
    assert "'threshold roc_auc' (roc_auc 0.5" in message
    assert "< minimum 0.9 on raw.bc_holdout (169 rows))" in message
    assert "'threshold accuracy' (accuracy 0." in message
    assert "'regression roc_auc' (roc_auc 0.5" in message and "vs @champion v1 0.9" in message
    assert "allowed 0.01" in message and "the alias did not move" in message
    assert _champion(project) == "1"
    assert len(project.records.list(AliasMove)) == moves
    refused = list(project.audit.entries())[-1]
    assert refused["action"] == "model.promote.refused"
    assert refused["before"] == {"version": "1"} and refused["after"] == {"version": "2"}
    assert [f.split(":")[0] for f in refused["detail"]["failed"]] == [
        "threshold accuracy", "threshold roc_auc", "regression roc_auc",
    ]  # fmt: skip
    # The failed evaluation is evidence too.
    failed = [e for e in project.records.list(Evidence) if e.version == "2"]
    assert [e.passed for e in failed] == [False]
    assert any("roc_auc" in m for m in failed[0].data["missed"])


def test_force_needs_a_written_reason_and_is_audited_as_forced(project_factory: Factory) -> None:
    project = project_factory(GATE)
    _register(project, good_model(), bad_model())
    registry.promote(project, "bc", "1")
    with pytest.raises(OpsloopError, match="refused by gate"):
        registry.promote(project, "bc", "2", force_reason="   ")  # blank is no reason
    assert _champion(project) == "1"
    ref = registry.promote(project, "bc", "2", force_reason="incident INC-7: v1 leaks PII")
    assert ref.version == "2" and _champion(project) == "2"
    entry = list(project.audit.entries())[-1]
    assert entry["action"] == "model.promote.forced"
    assert entry["detail"]["forced"] is True
    assert entry["detail"]["reason"] == "incident INC-7: v1 leaks PII"
    assert entry["before"] == {"version": "1"} and entry["after"] == {"version": "2"}
    move = project.records.list(AliasMove)[-1]
    assert (move.forced, move.reason, move.from_version) == (
        True, "incident INC-7: v1 leaks PII", "1",
    )  # fmt: skip
    assert {c["name"] for c in move.checks if not c["ok"]} >= {"threshold roc_auc"}


def test_regression_margin_against_the_current_champion(project_factory: Factory) -> None:
    config = '\n[registry.gate]\nholdout = "raw.bc_holdout"\nmax_regression = { roc_auc = 0.02 }\n'
    project = project_factory(config)
    _register(project, good_model(), bad_model(), good_model())
    registry.promote(project, "bc", "1")
    with pytest.raises(OpsloopError) as info:
        registry.promote(project, "bc", "2")
    assert "refused by gate 'regression roc_auc'" in str(info.value)
    assert "threshold" not in str(info.value)
    # An equally good version is not worse: it passes.
    registry.promote(project, "bc", "3")
    detail = list(project.audit.entries())[-1]["detail"]["gates"][0]["detail"]
    assert detail.startswith("roc_auc 0.9") and "vs @champion v1" in detail
    assert "not worse by 0.0000, allowed 0.02" in detail


def test_no_gate_configured_is_said_in_the_audit(project_factory: Factory) -> None:
    project = project_factory()
    _register(project, bad_model())
    registry.promote(project, "bc", "1")
    entry = list(project.audit.entries())[-1]
    assert entry["action"] == "model.promote"
    assert entry["detail"]["gates"] == "no gate configured"
    assert project.records.list(AliasMove)[-1].checks == []


def test_gate_guards_only_its_aliases(project_factory: Factory) -> None:
    project = project_factory(GATE)
    _register(project, bad_model())
    ref = registry.promote(project, "bc", "1", alias="challenger")
    assert ref.aliases == ["challenger"] and _champion(project) is None
    entry = list(project.audit.entries())[-1]
    assert entry["detail"]["gates"] == "no gate guards @challenger"
    assert project.records.list(Evidence) == []  # nothing was evaluated


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('[registry.gate]\nholdot = "raw.t"\n', "unknown key 'registry.gate.holdot'"),
        ('[registry.gate]\nholdout = "raw.t"\nthreshold = {}\n', "'registry.gate.threshold'"),
        ('[registry.gate]\nholdout = "holdout"\n', "must name a table as 'dataset.table'"),
        ('[registry.gate]\ntarget = "y"\n', "missing key 'registry.gate.holdout'"),
        (
            '[registry.gate]\nholdout = "raw.t"\nmax_regression = { f1 = -0.1 }\n',
            "margin of 'f1' must be 0 or more",
        ),
        ('[registry.gate]\nholdout = "raw.t"\nthresholds = { f1 = "high" }\n', "must be a number"),
        ("[registry]\ngates = 1\n", "unknown key 'registry.gates'"),
    ],
)
def test_gate_config_typos_are_one_line_config_errors(
    config: str, message: str, project_factory: Factory
) -> None:
    with pytest.raises(ConfigError) as info:
        project_factory(config)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_metric_is_a_config_error_at_promote_time(project_factory: Factory) -> None:
    config = '[registry.gate]\nholdout = "raw.bc_holdout"\nthresholds = { roc_acu = 0.9 }\n'
    project = project_factory(config)
    _register(project, good_model())
    with pytest.raises(ConfigError) as info:
        registry.promote(project, "bc", "1")
    message = str(info.value)
    assert "unknown metric 'roc_acu' in [registry.gate] thresholds" in message
    assert "known metrics: accuracy, precision, recall, f1, roc_auc" in message
    assert _champion(project) is None and project.records.list(AliasMove) == []
    assert _actions(project) == ["model.register"]


def test_unreadable_holdout_fails_the_gate_not_the_process(project_factory: Factory) -> None:
    config = '[registry.gate]\nholdout = "raw.nope"\nthresholds = { f1 = 0.5 }\n'
    project = project_factory(config)
    _register(project, good_model())
    with pytest.raises(OpsloopError) as info:
        registry.promote(project, "bc", "1")
    assert "refused by gate 'threshold f1' (error: no plugin reads dataset tables" in str(
        info.value
    )
    assert _champion(project) is None


def test_bad_names_and_versions_leave_no_state(project_factory: Factory) -> None:
    project = project_factory(GATE)
    _register(project, good_model())
    with pytest.raises(OpsloopError, match=r"model 'nope' is not registered .*models: bc"):
        registry.promote(project, "nope", "1")
    with pytest.raises(OpsloopError, match=r"model 'bc' has no version 7 .*versions: 1"):
        registry.promote(project, "bc", "7")
    with pytest.raises(OpsloopError, match="has no version 9"):
        registry.set_alias(project, "bc", "challenger", "9")
    with pytest.raises(OpsloopError, match="'latest' is not a valid alias"):
        registry.promote(project, "bc", "1", alias="latest")
    with pytest.raises(OpsloopError, match="give an alias name"):
        registry.promote(project, "bc", "1", alias="@")
    assert project.records.list(AliasMove) == []
    assert _actions(project) == ["model.register"]
    assert registry.get_store(project).resolve("bc", "1").aliases == []


def test_tampered_candidate_is_never_promoted(project_factory: Factory) -> None:
    project = project_factory()
    _register(project, good_model(), good_model())
    registry.promote(project, "bc", "1")
    model_file = artifact_folder(project, "bc", "2") / "model.skops"
    model_file.write_bytes(model_file.read_bytes()[:-1])
    for reason in ("", "ship it anyway"):
        with pytest.raises(IntegrityError, match=r"artifact file 'model\.skops' changed since"):
            registry.promote(project, "bc", "2", force_reason=reason)
    assert _champion(project) == "1" and len(project.records.list(AliasMove)) == 1


def test_readiness_can_be_required_for_promotion(project_factory: Factory) -> None:
    from opsloop import readiness

    config = GATE + '\n[registry.readiness]\nrequired_for = ["champion"]\n'
    project = project_factory(config)
    _register(project, good_model(), good_model())
    with pytest.raises(OpsloopError, match=r"refused by gate 'readiness' \(no readiness verdict"):
        registry.promote(project, "bc", "1")
    # The first deployment has nothing to roll back to: it goes in forced, with a reason.
    registry.promote(project, "bc", "1", force_reason="first deployment, approved by bob")
    registry.set_metadata(project, "bc", None, {"owner": "alice@example.com"})
    registry.record_evidence(project, "bc", "2", "load_test", data={"p99_ms": 12}, passed=True)
    registry.record_evidence(project, "bc", "2", "security_scan", data={"findings": 0})
    verdict = readiness.check_readiness(project, "bc", "2")
    assert not verdict.go and [i["item"] for i in verdict.items if not i["ok"]] == [
        "evaluation passed"
    ]
    with pytest.raises(OpsloopError, match=r"'readiness' \(no-go rdy_.*: evaluation passed\)"):
        registry.promote(project, "bc", "2")
    registry.promote(project, "bc", "2", alias="challenger")  # not guarded
    from opsloop.evaluation import evaluate_version

    evaluate_version(project, registry.get_store(project).resolve("bc", "2"))
    assert readiness.check_readiness(project, "bc", "2").go
    assert registry.promote(project, "bc", "2").aliases == ["challenger", "champion"]
    gates = list(project.audit.entries())[-1]["detail"]["gates"]
    assert [g["name"] for g in gates][-1] == "readiness" and all(g["ok"] for g in gates)


def test_set_alias_keeps_its_contract_and_records_history(project_factory: Factory) -> None:
    project = project_factory()
    _register(project, good_model(), good_model())
    assert registry.set_alias(project, "bc", "champion", "1").aliases == ["champion"]
    registry.set_alias(project, "bc", "@champion", "2")
    entries = list(project.audit.entries())
    assert [e["action"] for e in entries[-2:]] == ["model.alias", "model.alias"]
    assert entries[-1]["before"] == {"version": "1"} and entries[-1]["after"] == {"version": "2"}
    assert registry.alias_stack(project, "bc", "champion") == ["1", "2"]

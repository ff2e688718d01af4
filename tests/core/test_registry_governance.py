"""Model cards, readiness, evidence, metadata and registration from a run or a path."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_registry_kit as kit
from test_registry_kit import GATE, TRAIN_LOAD_IDS, artifact_folder, good_model, lineage

from opsloop import hookimpl, readiness, registry
from opsloop.errors import OpsloopError
from opsloop.interfaces import PluginInfo
from opsloop.modelcard import FIELDS, GOVERNANCE, build_card, write_card
from opsloop.project import Project
from opsloop.records import Evidence, ReadinessVerdict
from opsloop.testing import check_plugin

Factory = Callable[..., Project]
no_outbound_network = kit.no_outbound_network
project_factory = kit.project_factory


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


# ---------------------------------------------------------------------------- cards
def test_card_lists_every_missing_field_as_a_gap(project_factory: Factory) -> None:
    project = project_factory()
    registry.register_model(project, "bc", good_model(), lineage())
    md, js, card = write_card(project, "bc")  # no champion: the latest version
    assert (md, js) == (project.home / "cards" / "bc-v1.md", project.home / "cards" / "bc-v1.json")
    assert json.loads(js.read_text()) == card
    gaps = [g["field"] for g in card["gaps"]]
    assert gaps == [
        "owner",
        "intended_use",
        "limitations",
        "risk_class",
        "human_oversight",
        "lineage.git_commit",
        "evaluation",
        "security.load_test",
        "security.security_scan",
        "deployment.readiness",
    ]
    for key in GOVERNANCE:
        assert card[key] is None  # never invented
    assert card["evaluation"] is None and card["lineage"]["git_commit"] is None
    assert card["training_data"] == {
        "dataset": "raw.bc_train",
        "load_ids": TRAIN_LOAD_IDS,
        "content_hash": "c0ffee",
        "target": "target",
    }
    assert card["parameters"]["C"] == "1.0" and card["training_metrics"]["roc_auc"] > 0.9
    assert card["environment"]["packages"]["scikit-learn"]
    assert card["input_example"] and len(card["input_example"]) == 5
    folder = artifact_folder(project, "bc", "1")
    expected = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.is_file() and p.name != "registered_model_meta"
    }
    assert card["integrity"]["files"] == expected and card["integrity"]["intact"]
    assert set(card["frameworks"]) == {f.key for f in FIELDS}
    assert card["frameworks"]["training_data"]["eu_ai_act"] == "Annex IV 2(d)"
    text = md.read_text()
    assert text.startswith("# Model card: bc version 1")
    assert text.count("*gap: not recorded*") >= 8
    assert "- **owner**: Owner is not recorded" in text and "opsloop model meta bc --owner" in text
    assert "EU AI Act Annex IV 2(g), 3, 4 · NIST AI RMF MEASURE 2.1, MEASURE 2.3" in text
    entry = list(project.audit.entries())[-1]
    assert entry["action"] == "model.card" and entry["after"]["gaps"] == gaps


def test_a_fully_documented_version_has_no_gaps(project_factory: Factory, tmp_path: Path) -> None:
    project = project_factory(GATE)
    _git(project.root, "init", "-q")
    _git(project.root, "add", "opsloop.toml")
    _git(project.root, "commit", "-q", "-m", "project")
    head = _git(project.root, "rev-parse", "HEAD")
    registry.register_model(project, "bc", good_model(), lineage())
    registry.register_model(project, "bc", good_model(), lineage())
    registry.promote(project, "bc", "1")
    registry.promote(project, "bc", "2")  # evaluated on the holdout by the gate
    registry.set_metadata(
        project,
        "bc",
        None,
        {
            "owner": "Alice Doe <alice@example.com>",
            "intended_use": "second-reader triage of biopsy features",
            "limitations": "not validated on non-FNA imaging",
            "risk_class": "high (EU AI Act Annex III)",
            "human_oversight": "a pathologist confirms every positive",
        },
    )
    registry.set_metadata(project, "bc", "2", {"limitations": "v2: trained on 400 rows"})
    result = tmp_path / "load.json"
    result.write_text(json.dumps({"p99_ms": 14.2, "rps": 310, "passed": True, "api_key": "x1"}))
    registry.record_evidence(project, "bc", "2", "load_test", file=result)
    registry.record_evidence(project, "bc", "2", "security_scan", data={"findings": 0}, passed=True)
    assert readiness.check_readiness(project, "bc", "2").go

    card = build_card(project, "bc")  # the champion
    assert card["model"]["version"] == "2" and card["gaps"] == []
    assert card["lineage"]["git_commit"] == head and card["lineage"]["git_dirty"] is False
    assert card["limitations"] == "v2: trained on 400 rows"  # the version's own value wins
    assert card["owner"] == "Alice Doe <alice@example.com>"
    assert card["evaluation"]["holdout"] == "raw.bc_holdout"
    assert card["evaluation"]["verdict"] == "passed" and card["evaluation"]["rows"] == 169
    assert (
        card["security"]["load_test"]["sha256"] == hashlib.sha256(result.read_bytes()).hexdigest()
    )
    assert card["deployment"]["readiness"]["go"] is True
    assert card["deployment"]["rollback_target"] == "1"
    assert [m["to"] for m in card["deployment"]["alias_moves"]] == ["2"]
    (stored,) = [e for e in project.records.list(Evidence) if e.type == "load_test"]
    assert stored.data == {"p99_ms": 14.2, "rps": 310, "api_key": "***"}  # no secrets kept
    assert stored.passed is True


# ---------------------------------------------------------------------------- readiness
def test_readiness_reports_each_item_and_is_stored(
    project_factory: Factory, tmp_path: Path
) -> None:
    project = project_factory(GATE)
    registry.register_model(project, "bc", good_model(), lineage())
    verdict = readiness.check_readiness(project, "bc", "1")
    assert [(i["item"], i["ok"]) for i in verdict.items] == [
        ("evaluation passed", False),
        ("load test recorded", False),
        ("security scan recorded", False),
        ("rollback target exists", False),
        ("owner set", False),
        ("artifacts intact", True),
    ]
    assert not verdict.go
    assert "opsloop model evaluate bc 1" in verdict.items[0]["detail"]
    assert "@champion is not set" in verdict.items[3]["detail"]
    with pytest.raises(OpsloopError, match=r"bc version 1 is not ready \(rdy_.*evaluation passed"):
        readiness.require_ready(project, "bc", "1")

    registry.register_model(project, "bc", good_model(), lineage())
    registry.promote(project, "bc", "1")
    registry.set_metadata(project, "bc", None, {"owner": "alice"})
    failing = tmp_path / "scan.json"
    failing.write_text(json.dumps({"ok": False, "summary": "CVE-2026-0001 in a dependency"}))
    registry.record_evidence(project, "bc", "2", "security_scan", file=failing)
    registry.record_evidence(project, "bc", "2", "load_test", data={"rps": 200}, passed=True)
    from opsloop.evaluation import evaluate_version

    evaluate_version(project, registry.get_store(project).resolve("bc", "2"))
    second = readiness.check_readiness(project, "bc", "2")
    failed = {i["item"]: i["detail"] for i in second.items if not i["ok"]}
    assert list(failed) == ["security scan recorded"]
    assert "failed: CVE-2026-0001 in a dependency" in failed["security scan recorded"]
    registry.record_evidence(project, "bc", "2", "security_scan", data={}, passed=True)
    third = readiness.check_readiness(project, "bc", "2")
    assert third.go and readiness.require_ready(project, "bc", "2").id == third.id
    assert [v.id for v in project.records.list(ReadinessVerdict)] == [
        verdict.id, second.id, third.id,
    ]  # fmt: skip
    ready = [e for e in project.audit.entries() if e["action"] == "model.ready"]
    assert [e["after"]["go"] for e in ready] == [False, False, True]
    # Tampering turns a go into a no-go on the next check.
    (artifact_folder(project, "bc", "2") / "MLmodel").write_text("flavors: {}\n")
    fourth = readiness.check_readiness(project, "bc", "2")
    assert not fourth.go and fourth.items[-1]["detail"] == "'MLmodel' changed"


def test_evidence_bad_input_is_one_line_and_records_nothing(
    project_factory: Factory, tmp_path: Path
) -> None:
    project = project_factory()
    registry.register_model(project, "bc", good_model(), lineage())
    not_json = tmp_path / "x.json"
    not_json.write_text("p99=12")
    array = tmp_path / "a.json"
    array.write_text("[1, 2]")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"version": "1", "type": "pentest"}, "unknown evidence kind 'pentest'; use one of"),
        ({"version": "4", "type": "load_test"}, "model 'bc' has no version 4"),
        ({"version": "1", "type": "load_test", "file": tmp_path / "no.json"}, "cannot read"),
        ({"version": "1", "type": "load_test", "file": not_json}, "is not JSON"),
        ({"version": "1", "type": "load_test", "file": array}, "must hold a JSON object"),
    ]
    for kwargs, message in cases:
        version, kind = kwargs.pop("version"), kwargs.pop("type")
        with pytest.raises(OpsloopError) as info:
            registry.record_evidence(project, "bc", version, kind, **kwargs)
        assert message in str(info.value) and "\n" not in str(info.value)
    assert project.records.list(Evidence) == []


def test_metadata_on_model_and_version(project_factory: Factory) -> None:
    project = project_factory()
    registry.register_model(project, "bc", good_model(), lineage())
    registry.set_metadata(project, "bc", None, {"owner": "alice", "risk_class": "limited"})
    registry.set_metadata(project, "bc", "1", {"risk_class": "high"})
    assert registry.metadata(project, "bc") == {"owner": "alice", "risk_class": "limited"}
    assert registry.metadata(project, "bc", "1") == {"owner": "alice", "risk_class": "high"}
    registry.set_metadata(project, "bc", None, {"owner": ""})  # empty removes
    assert registry.metadata(project, "bc") == {"risk_class": "limited"}
    entries = [e for e in project.audit.entries() if e["action"] == "model.metadata"]
    assert [e["target"] for e in entries] == ["bc", "bc/1", "bc"]
    assert entries[-1]["before"] == {"owner": "alice"} and entries[-1]["after"] == {"owner": ""}
    with pytest.raises(OpsloopError, match="'Owner!' is not a valid metadata key"):
        registry.set_metadata(project, "bc", None, {"Owner!": "x"})
    with pytest.raises(OpsloopError, match="model 'nope' is not registered"):
        registry.set_metadata(project, "nope", None, {"owner": "x"})
    with pytest.raises(OpsloopError, match="has no version 9"):
        registry.set_metadata(project, "bc", "9", {"owner": "x"})


# ---------------------------------------------------------------------------- register from
def test_register_from_files_folders_and_runs(project_factory: Factory, tmp_path: Path) -> None:
    import skops.io

    project = project_factory()
    store: Any = registry.get_store(project)
    model = good_model().model
    skops_file = tmp_path / "model.skops"
    skops.io.dump(model, skops_file)
    ref = registry.register_from(
        project, "imported", str(skops_file), training_data="raw.bc_train", target="target"
    )
    prov = store.provenance(ref)
    assert prov["imported_from"] == str(skops_file.resolve())
    assert prov["training_data"]["dataset"] == "raw.bc_train"
    assert prov["training_data"]["load_ids"] == TRAIN_LOAD_IDS
    assert prov["training_data"]["content_hash"] == "h-bc_train"
    assert prov["parameters"]["estimator"] == "Pipeline"
    assert len(prov["signature"]["inputs"]) == 30 and len(prov["input_example"]) == 5
    after = list(project.audit.entries())[-1]["after"]
    assert after["imported_from"] == str(skops_file.resolve())

    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps(model))
    with pytest.raises(OpsloopError, match="unpickling runs code from it; pass --allow-pickle"):
        registry.register_from(project, "pickled", str(pickled), training_data="raw.bc_train")
    assert "pickled" not in store.list_models()
    ok = registry.register_from(
        project, "pickled", str(pickled), training_data="raw.bc_train", allow_pickle=True
    )
    assert ok.version == "1"
    with pytest.raises(OpsloopError, match="carries no input example"):
        registry.register_from(project, "pickled", str(skops_file))
    assert [r.version for r in store.list_versions("pickled")] == ["1"]

    # From a run opsloop made, and from the MLflow model folder itself.
    trained = registry.register_model(project, "bc", good_model(), lineage())
    from_run = registry.register_from(project, "copy", trained.run_id or "")
    prov = store.provenance(from_run)
    assert prov["imported_from"] == f"runs:/{trained.run_id}"
    assert prov["training_data"]["load_ids"] == TRAIN_LOAD_IDS
    assert prov["parameters"]["C"] == "1.0" and from_run.metrics == trained.metrics
    folder = artifact_folder(project, "bc", trained.version)
    from_folder = registry.register_from(project, "copy", str(folder))
    assert from_folder.version == "2" and from_folder.signature == trained.signature

    for source, message in [
        ("no-such-thing", "neither an existing model path nor a run id"),
        ("0" * 32, "no run '00000000000000000000000000000000'"),
        (str(tmp_path), "is not an MLflow model (no MLmodel file)"),
    ]:
        with pytest.raises(OpsloopError) as info:
            registry.register_from(project, "bad", source)
        assert message in str(info.value)
    assert "bad" not in store.list_models()


# ---------------------------------------------------------------------------- contract
def test_conformance_check_names_missing_store_methods(tmp_path: Path) -> None:
    class HalfStore:
        name = "half"

        def register(self, *a: Any, **k: Any) -> Any: ...
        def set_alias(self, *a: Any) -> Any: ...
        def resolve(self, *a: Any) -> Any: ...
        def load(self, *a: Any) -> Any: ...

    def plugin_for(store: Any) -> Any:
        class Plugin:
            @hookimpl
            def describe_plugin(self) -> PluginInfo:
                return PluginInfo(name="half", stage="registry")

            @hookimpl
            def model_store(self, project: Any) -> Any:
                return store

        return Plugin()

    (problem,) = check_plugin(plugin_for(HalfStore()), tmp_path / "a")
    assert problem == (
        "model_store() must return an opsloop.interfaces.ModelStore; HalfStore lacks: "
        "list_models, list_versions"
    )

    class Listing(HalfStore):
        def list_models(self) -> list[str]:
            return []

        def list_versions(self, name: str) -> list[Any]:
            return []

    assert check_plugin(plugin_for(Listing()), tmp_path / "b") == []  # no governance: fine

    class Undeclared(Listing):
        def provenance(self, ref: Any) -> dict[str, Any]:
            return {}

    (problem,) = check_plugin(plugin_for(Undeclared()), tmp_path / "c")
    assert "implements provenance but does not declare" in problem

    class Claims(Listing):
        capabilities = frozenset({"governance"})

    (problem,) = check_plugin(plugin_for(Claims()), tmp_path / "d")
    assert problem.endswith("declares the governance capability but lacks: provenance, verify, "
                            "get_metadata, set_metadata, import_model")  # fmt: skip
    # The core still moves aliases with a store without governance, and says what it cannot do.
    with pytest.raises(OpsloopError, match=r"'half' does not offer governance .* a model card"):
        registry.governance(Listing(), "a model card")  # type: ignore[arg-type]

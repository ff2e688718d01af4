"""The MLflow store's provenance, per-file SHA-256 manifest and integrity-checked loads."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opsloop_mlflow.store import MlflowModelStore

from opsloop.errors import IntegrityError, OpsloopError
from opsloop.interfaces import Dataset, TrainedModel
from opsloop.project import Project


def _store(project: Project) -> MlflowModelStore:
    store = project.hook.model_store(project=project)
    assert isinstance(store, MlflowModelStore)
    return store


def _folder(store: MlflowModelStore, name: str, version: str) -> Path:
    return Path(store.client.get_model_version_download_uri(name, version).removeprefix("file://"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registration_records_provenance_and_a_hash_per_file(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    store = _store(project)
    ref = store.register("bc", trained, lineage={**lineage, "registered_by": "alice"})
    prov = store.provenance(ref)
    folder = _folder(store, "bc", "1")
    files = {p.name: _sha(p) for p in folder.iterdir() if p.is_file()}
    assert set(files) >= {"MLmodel", "model.skops", "conda.yaml", "input_example.json"}
    assert prov["artifacts"]["files"] == files
    manifest = json.dumps(files, sort_keys=True, separators=(",", ":"))
    assert prov["artifacts"]["manifest_sha256"] == hashlib.sha256(manifest.encode()).hexdigest()
    # The manifest is kept in the run too, for auditors who read MLflow directly.
    logged = Path(store.client.download_artifacts(ref.run_id, "opsloop/manifest.json"))
    assert json.loads(logged.read_text()) == files

    assert prov["registered_by"] == "alice" and prov["run_id"] == ref.run_id
    assert prov["registered_at"].startswith(ref.created_at[:19])
    assert prov["training_data"] == {
        "dataset": "breast_cancer",
        "load_ids": lineage["load_ids"],
        "load_ids_total": 2,
        "content_hash": lineage["content_hash"],
        "target": "target",
    }
    assert prov["code"] == {"git_commit": None, "git_dirty": None}  # not a git work tree
    assert prov["parameters"]["C"] == "1.0" and prov["parameters"]["train_rows"] == "455"
    assert prov["metrics"] == pytest.approx(trained.metrics)
    env = prov["environment"]
    import sklearn

    assert env["packages"]["scikit-learn"] == sklearn.__version__
    assert env["packages"]["skops"] and env["python"].count(".") == 2
    assert [c["name"] for c in prov["signature"]["inputs"]] == trained.features
    assert trained.input_example is not None
    expected = trained.input_example.to_dict(orient="records")
    assert prov["input_example"] == expected
    assert prov["flavor"] == "sklearn"
    assert store.list_models() == ["bc"]
    assert [r.version for r in store.list_versions("bc")] == ["1"]


def test_verify_names_changed_missing_and_added_files(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    store = _store(project)
    ref = store.register("bc", trained, lineage=lineage)
    folder = _folder(store, "bc", "1")
    assert store.verify(ref) == []
    (folder / "registered_model_meta").write_text("name: bc\n")  # MLflow's own bookkeeping
    assert store.verify(ref) == []

    (folder / "model.skops").write_bytes((folder / "model.skops").read_bytes() + b"!")
    (folder / "python_env.yaml").unlink()
    (folder / "evil.pkl").write_bytes(b"x")
    assert store.verify(ref) == [
        "'model.skops' changed",
        "'python_env.yaml' missing",
        "'evil.pkl' added",
    ]
    with pytest.raises(IntegrityError) as info:
        store.load(ref)
    assert str(info.value) == (
        "model bc v1: artifact file 'model.skops' changed since registration (and 2 more); it "
        "does not match the SHA-256 recorded at registration, refusing to load it"
    )
    assert info.value.exit_code == 1


def test_a_pickle_is_never_unpickled_before_its_hash_matched(
    project_factory: Callable[..., Project],
    trained: TrainedModel,
    lineage: dict[str, Any],
    breast_cancer: Dataset,
    tmp_path: Path,
) -> None:
    project = project_factory(config='[plugin.mlflow]\nserialization_format = "pickle"\n')
    store = _store(project)
    ref = store.register("bc", trained, lineage=lineage)
    features = breast_cancer.frame[trained.features]
    assert np.array_equal(store.load(ref).predict(features), trained.model.predict(features))

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.mkdir, (str(marker),))

    (_folder(store, "bc", "1") / "model.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(IntegrityError, match=r"artifact file 'model\.pkl' changed since"):
        store.load(ref)
    assert not marker.exists()


def test_an_edited_manifest_tag_is_refused(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    store = _store(project)
    ref = store.register("bc", trained, lineage=lineage)
    folder = _folder(store, "bc", "1")
    (folder / "model.skops").write_bytes(b"swapped")
    mv = store.client.get_model_version("bc", "1")
    manifest = json.loads(mv.tags["opsloop.manifest"])
    manifest["model.skops"] = _sha(folder / "model.skops")  # cover the swap in the tag
    store.client.set_model_version_tag("bc", "1", "opsloop.manifest", json.dumps(manifest))
    assert store.verify(ref) == ["'opsloop.manifest' (the hash manifest itself) changed"]
    with pytest.raises(IntegrityError, match="the hash manifest itself"):
        store.load(ref)


def test_versions_with_only_a_folder_digest_are_still_checked(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    """Versions registered before per-file manifests carry one digest over the folder."""
    store = _store(project)
    ref = store.register("bc", trained, lineage=lineage)
    for tag in ("opsloop.manifest", "opsloop.manifest_sha256"):
        store.client.delete_model_version_tag("bc", "1", tag)
    assert store.verify(ref) == []
    store.load(ref)
    folder = _folder(store, "bc", "1")
    (folder / "conda.yaml").write_text("tampered: true\n")
    assert store.verify(ref) == ["(one or more; only a folder digest was recorded) changed"]
    with pytest.raises(IntegrityError):
        store.load(ref)
    for tag in ("opsloop.artifact_digest",):
        store.client.delete_model_version_tag("bc", "1", tag)
    assert store.verify(ref)[0].endswith("unverifiable")
    with pytest.raises(OpsloopError, match="not registered by opsloop"):
        store.load(ref)


def test_metadata_lives_in_registry_tags(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    store = _store(project)
    store.register("bc", trained, lineage=lineage)
    store.set_metadata("bc", None, {"owner": "alice", "intended_use": "triage"})
    store.set_metadata("bc", "@latest", {"risk_class": "high"})
    assert store.get_metadata("bc") == {"intended_use": "triage", "owner": "alice"}
    assert store.get_metadata("bc", "1") == {"risk_class": "high"}
    assert store.client.get_registered_model("bc").tags["opsloop.meta.owner"] == "alice"
    store.set_metadata("bc", None, {"owner": " "})
    assert store.get_metadata("bc") == {"intended_use": "triage"}
    store.set_metadata("bc", None, {"owner": ""})  # removing twice is fine
    with pytest.raises(OpsloopError, match="'x y' is not a valid metadata key"):
        store.set_metadata("bc", None, {"x y": "1"})
    with pytest.raises(OpsloopError, match="model 'nope' is not registered"):
        store.get_metadata("nope")

"""The MLflow registry plugin against a real MLflow SQLite store and real scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import opsloop_mlflow.plugin as mlflow_plugin
import pandas as pd
import pytest
from opsloop_mlflow.store import MlflowModelStore

from opsloop.errors import ConfigError, IntegrityError, OpsloopError
from opsloop.interfaces import Dataset, ModelStore, TrainedModel
from opsloop.project import Project
from opsloop.testing import assert_plugin_conforms


def _store(project: Project) -> MlflowModelStore:
    store = project.hook.model_store(project=project)
    assert isinstance(store, MlflowModelStore)
    return store


# ---------------------------------------------------------------------------- plugin shape
def test_plugin_conforms_and_imports_no_vendor_sdk(tmp_path: Path) -> None:
    assert_plugin_conforms(mlflow_plugin, tmp_path / "conform")
    probe = (
        "import sys, opsloop_mlflow.plugin, opsloop_mlflow.checks, opsloop.cli.commands_model; "
        "print(sorted(m for m in ('mlflow', 'sklearn', 'pandas', 'numpy', 'skops') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_mlflow_is_imported_with_telemetry_off(tmp_path: Path) -> None:
    """Outside pytest/CI (which MLflow detects itself), the plugin still turns telemetry off."""
    import os

    markers = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY")
    env = {k: v for k, v in os.environ.items() if k not in markers and k != "DO_NOT_TRACK"}
    probe = (
        "import os, opsloop_mlflow._vendor as v; v.import_mlflow(); "
        "from mlflow.telemetry.client import get_telemetry_client; "
        "print(get_telemetry_client(), os.environ['MLFLOW_DISABLE_TELEMETRY'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.stdout.split() == ["None", "true"]


def test_entry_point_names_the_plugin_module() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="opsloop") if e.name == "mlflow"]
    assert ep.value == "opsloop_mlflow.plugin"
    info = mlflow_plugin.describe_plugin()
    assert (info.name, info.stage) == ("mlflow", "registry")


# ---------------------------------------------------------------------------- training
def test_train_model_holds_out_a_stratified_split(
    trained: TrainedModel, breast_cancer: Dataset
) -> None:
    expected = [c for c in breast_cancer.frame.columns if c != "target"]
    assert trained.flavor == "sklearn"
    assert trained.features == expected and len(expected) == 30
    assert trained.target == "target"
    assert set(trained.metrics) == {"accuracy", "roc_auc", "f1"}
    assert trained.metrics["accuracy"] > 0.9
    assert trained.metrics["roc_auc"] > 0.95
    assert 0.9 < trained.metrics["f1"] <= 1.0
    assert trained.params["test_rows"] == 114 and trained.params["train_rows"] == 455
    assert trained.input_example is not None
    assert list(trained.input_example.columns) == expected
    assert len(trained.input_example) == 5
    assert [name for name, _ in trained.model.steps] == ["scaler", "classifier"]


def test_hook_train_model_params_change_the_model(
    project: Project, breast_cancer: Dataset, trained: TrainedModel
) -> None:
    other = project.hook.train_model(
        project=project,
        data=breast_cancer,
        target="target",
        params={"C": 0.01, "test_size": 0.3, "random_state": 7},
    )
    assert other.params["C"] == 0.01 and other.params["test_rows"] == 171
    coef = other.model.named_steps["classifier"].coef_
    base = trained.model.named_steps["classifier"].coef_
    assert np.abs(coef).sum() < np.abs(base).sum()  # stronger regularisation


@pytest.mark.parametrize(
    ("frame", "target", "params", "message"),
    [
        (pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1]}), "label", {}, "target column 'label'"),
        (
            pd.DataFrame({"name": ["x", "y"] * 5, "city": ["p", "q"] * 5, "y": [0, 1] * 5}),
            "y",
            {},
            "no numeric feature column besides target 'y' (columns: name, city)",
        ),
        (pd.DataFrame({"a": [1.0] * 10, "y": [0, 1] * 5}), "y", {"depth": 3}, "depth"),
        (pd.DataFrame({"a": [1.0, None] * 5, "y": [0, 1] * 5}), "y", {}, "column(s) a have"),
        (pd.DataFrame({"a": [1.0] * 10, "y": [1] * 10}), "y", {}, "single class"),
    ],
)
def test_train_model_rejects_bad_input(
    project: Project, frame: pd.DataFrame, target: str, params: dict[str, Any], message: str
) -> None:
    data = Dataset(name="tiny", frame=frame)
    with pytest.raises(OpsloopError, match=None) as info:
        project.hook.train_model(project=project, data=data, target=target, params=params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- registry
def test_register_alias_resolve_and_load(
    project: Project,
    trained: TrainedModel,
    breast_cancer: Dataset,
    lineage: dict[str, Any],
) -> None:
    store = _store(project)
    assert isinstance(store, ModelStore) and store.name == "mlflow"

    first = store.register("breast-cancer", trained, lineage=lineage)
    assert (first.version, first.uri, first.store) == ("1", "models:/breast-cancer/1", "mlflow")
    assert first.load_ids == breast_cancer.load_ids
    assert first.metrics == pytest.approx(trained.metrics)
    assert [c["name"] for c in first.signature["inputs"]] == trained.features
    assert {c["type"] for c in first.signature["inputs"]} == {"double"}
    assert first.signature["outputs"] == [{"name": "prediction", "type": "long"}]

    # What MLflow itself holds: version tags (lineage), run params/metrics/tags.
    client = store.client
    mv = client.get_model_version("breast-cancer", "1")
    assert json.loads(mv.tags["opsloop.load_ids"]) == breast_cancer.load_ids
    assert mv.tags["opsloop.content_hash"] == breast_cancer.content_hash
    assert mv.tags["opsloop.artifact_digest"].startswith("sha256:")
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["roc_auc"] == pytest.approx(trained.metrics["roc_auc"])
    assert run.data.params["C"] == "1.0" and run.data.params["target"] == "target"
    assert run.data.tags["opsloop.dataset"] == "breast_cancer"
    assert json.loads(run.data.tags["opsloop.load_ids"]) == breast_cancer.load_ids
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "bc-test"
    assert experiment.artifact_location == (project.home / "mlartifacts").as_uri()

    second = store.register("breast-cancer", trained, lineage=lineage)
    assert second.version == "2" and second.run_id != first.run_id

    assert store.set_alias("breast-cancer", "champion", "1") is None
    assert store.set_alias("breast-cancer", "champion", "2") == "1"
    assert store.set_alias("breast-cancer", "challenger", "1") is None
    champion = store.resolve("breast-cancer", "@champion")
    assert (champion.version, champion.aliases) == ("2", ["champion"])
    assert store.resolve("breast-cancer", "champion").version == "2"
    assert store.resolve("breast-cancer", "1").aliases == ["challenger"]
    assert store.resolve("breast-cancer", "latest").version == "2"

    loaded = store.load(champion)
    frame = breast_cancer.frame
    features = frame[trained.features]
    assert np.array_equal(loaded.predict(features), trained.model.predict(features))
    assert np.allclose(loaded.predict_proba(features), trained.model.predict_proba(features))
    # Extra columns (the target, ids) are dropped by the signature; order does not matter.
    shuffled = frame.sample(frac=1.0, axis=1, random_state=0)
    assert np.array_equal(loaded.predict(shuffled), trained.model.predict(features))
    with pytest.raises(OpsloopError, match="missing from the input: mean_radius"):
        loaded.predict(features.drop(columns=["mean_radius"]))


def test_mlflow_own_loader_reads_the_same_version(
    project: Project,
    trained: TrainedModel,
    breast_cancer: Dataset,
    lineage: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`mlflow.pyfunc.load_model("models:/name@alias")` works on opsloop's registry, and the
    bookkeeping file it writes into the model folder does not break opsloop's digest check."""
    import mlflow.pyfunc
    from opsloop_mlflow._vendor import scoped_uris

    store = _store(project)
    store.register("bc", trained, lineage=lineage)
    store.set_alias("bc", "champion", "1")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    with scoped_uris(store.config.tracking_uri, store.config.registry_uri):
        pyfunc = mlflow.pyfunc.load_model("models:/bc@champion")
    features = breast_cancer.frame[trained.features]
    loaded = store.load(store.resolve("bc", "@champion"))
    assert np.array_equal(pyfunc.predict(features), loaded.predict(features))


def test_git_commit_of_the_project_is_recorded(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    store = _store(project)
    outside = store.register("bc", trained, lineage=lineage)
    assert "mlflow.source.git.commit" not in store.client.get_run(outside.run_id).data.tags
    git("init", "-q")
    git("add", "opsloop.toml")
    git("commit", "-q", "-m", "project")
    head = git("rev-parse", "HEAD")
    inside = store.register("bc", trained, lineage=lineage)
    tags = store.client.get_run(inside.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == head
    assert tags["opsloop.git_dirty"] == "false"
    mv = store.client.get_model_version("bc", inside.version)
    assert mv.tags["opsloop.git_commit"] == head


def test_unknown_model_alias_and_version(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    store = _store(project)
    with pytest.raises(
        OpsloopError, match=r"model 'nope' is not registered .*registered models: none"
    ):
        store.resolve("nope", "@champion")
    store.register("bc", trained, lineage=lineage)
    store.set_alias("bc", "champion", "1")
    with pytest.raises(OpsloopError) as info:
        store.resolve("bc", "@staging")
    message = str(info.value)
    assert "model 'bc' has no alias 'staging'" in message
    assert "versions: 1" in message and "aliases: champion->1" in message
    with pytest.raises(OpsloopError, match=r"model 'bc' has no version 7 .*versions: 1"):
        store.resolve("bc", "7")
    with pytest.raises(OpsloopError, match=r"model 'other' is not registered .*models: bc"):
        store.set_alias("other", "champion", "1")
    with pytest.raises(OpsloopError, match="has no version 3"):
        store.set_alias("bc", "champion", "3")
    with pytest.raises(OpsloopError, match="'latest' is not a valid alias"):
        store.set_alias("bc", "latest", "1")
    with pytest.raises(OpsloopError, match="not a valid model name"):
        store.resolve("bad name/x", "1")
    assert store.resolve("bc", "@champion").version == "1"  # nothing moved


def test_failed_register_leaves_nothing_behind(
    project: Project,
    trained: TrainedModel,
    lineage: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.entities import ViewType

    store = _store(project)
    models_dir = project.home / "mlartifacts" / "models"
    seen: list[int] = []

    def broken_ref(mv: Any) -> Any:
        seen.append(len(store._model_versions("bc")))  # the version exists at this point...
        seen.append(len(list(models_dir.iterdir())))  # ... and so do its artifacts
        raise RuntimeError("disk full")

    # A brand-new model: the version, the registered model, the run and artifacts go.
    monkeypatch.setattr(store, "_ref", broken_ref)
    with pytest.raises(OpsloopError, match=r"registering model 'bc' .*disk full; nothing was"):
        store.register("bc", trained, lineage=lineage)
    monkeypatch.undo()
    assert store.registered_models() == []
    experiment = store.client.get_experiment_by_name("bc-test")
    active = store.client.search_runs(
        [experiment.experiment_id], run_view_type=ViewType.ACTIVE_ONLY
    )
    assert active == []
    assert seen == [1, 1]
    assert list(models_dir.iterdir()) == []

    # An existing model keeps exactly its versions.
    store.register("bc", trained, lineage=lineage)
    monkeypatch.setattr(store, "_ref", broken_ref)
    with pytest.raises(OpsloopError, match="nothing was registered"):
        store.register("bc", trained, lineage=lineage)
    monkeypatch.undo()
    assert seen[2:] == [2, 2]
    assert [r.version for r in store.versions("bc")] == ["1"]
    assert len(list(models_dir.iterdir())) == 1
    # MLflow never reuses a deleted version number: "2" stays burnt, which keeps a number
    # meaning one artifact forever.
    assert store.register("bc", trained, lineage=lineage).version == "3"


def test_tampered_artifacts_are_refused(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    store = _store(project)
    ref = store.register("bc", trained, lineage=lineage)
    store.load(ref)  # intact: loads
    location = store.client.get_model_version_download_uri("bc", "1")
    model_file = Path(location.removeprefix("file://")) / "model.skops"
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"artifact file 'model\.skops' changed since"):
        store.load(ref)


def test_store_keeps_mlflow_global_state(
    project: Project,
    trained: TrainedModel,
    lineage: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    user_uri = f"sqlite:///{tmp_path / 'users-own.db'}"
    mlflow.set_tracking_uri(user_uri)
    try:
        store = _store(project)
        ref = store.register("bc", trained, lineage=lineage)
        store.set_alias("bc", "champion", "1")
        store.load(store.resolve("bc", "@champion"))
        assert [r.version for r in store.versions()] == [ref.version]
        assert mlflow.get_tracking_uri() == user_uri
    finally:
        mlflow.set_tracking_uri(None)
    assert list(cwd.iterdir()) == []  # no stray mlflow.db / mlruns
    assert not (tmp_path / "users-own.db").exists()


def test_hook_model_store_behind_the_core_registry_emits_and_audits(
    project: Project, trained: TrainedModel, lineage: dict[str, Any]
) -> None:
    from opsloop import registry

    ref = registry.register_model(project, "bc", trained, lineage)
    assert ref.version == "1"
    moved = registry.set_alias(project, "bc", "champion", "1")
    assert moved.aliases == ["champion"]
    actions = [e["action"] for e in project.audit.entries()]
    assert actions == ["model.register", "model.alias"]


# ---------------------------------------------------------------------------- settings
def test_settings_defaults_and_overrides(
    project_factory: Callable[..., Project], monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsloop_mlflow.settings import resolve

    first = project_factory("a")
    default = resolve(None, first)
    home = first.home
    assert default.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert default.registry_uri == default.tracking_uri
    assert default.artifact_root == (home / "mlartifacts").as_uri()
    assert default.experiment == "bc-test"

    custom = project_factory(
        "b",
        config=(
            '[plugin.mlflow]\ntracking_uri = "sqlite:///state/track.db"\n'
            'artifact_root = "store/artifacts"\nexperiment = "churn"\n'
        ),
    )
    resolved = resolve(None, custom)
    assert resolved.tracking_uri == f"sqlite:///{custom.root / 'state' / 'track.db'}"
    assert resolved.artifact_root == (custom.root / "store" / "artifacts").as_uri()
    assert resolved.experiment == "churn"

    remote = resolve(
        None,
        project_factory("c", config='[plugin.mlflow]\ntracking_uri = "http://127.0.0.1:5999"\n'),
    )
    assert remote.artifact_root is None  # the server decides (mlflow-artifacts:/)

    # the environment the project was opened with (Project.open(environ=...)), not os.environ
    monkeypatch.setenv("OPSLOOP_PLUGIN__MLFLOW__EXPERIMENT", "ignored")
    env = {"OPSLOOP_PLUGIN__MLFLOW__EXPERIMENT": "from-env"}
    assert resolve(None, project_factory("d", environ=env)).experiment == "from-env"


def test_bad_settings_key_is_a_config_error(project_factory: Callable[..., Project]) -> None:
    project = project_factory(config='[plugin.mlflow]\ntrackin_uri = "sqlite:///x.db"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'plugin\.mlflow\.trackin_uri'"):
        project.hook.model_store(project=project)
    project = project_factory("p2", config='[plugin.mlflow]\nserialization_format = "joblib"\n')
    with pytest.raises(ConfigError, match="serialization_format"):
        project.hook.model_store(project=project)


# ---------------------------------------------------------------------------- doctor
def test_doctor_checks(project_factory: Callable[..., Project], tmp_path: Path) -> None:
    healthy = project_factory()
    results = {r.name: r for r in mlflow_plugin.register_checks(project=healthy)}
    assert results["mlflow tracking store reachable"].ok
    assert results["mlflow artifact folder writable"].ok

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    broken = project_factory(
        "broken", config=f'[plugin.mlflow]\ntracking_uri = "sqlite:///{blocker}/mlflow.db"\n'
    )
    (check,) = [r for r in mlflow_plugin.register_checks(project=broken) if "tracking" in r.name]
    assert not check.ok and "not a folder" in check.detail

    down = project_factory("down", config='[plugin.mlflow]\ntracking_uri = "http://127.0.0.1:9"\n')
    (check,) = [r for r in mlflow_plugin.register_checks(project=down) if "tracking" in r.name]
    assert not check.ok and "127.0.0.1:9" in check.detail

    bad = project_factory("bad", config="[plugin.mlflow]\nnope = 1\n")
    (check,) = mlflow_plugin.register_checks(project=bad)
    assert not check.ok and "plugin.mlflow.nope" in check.detail


# ---------------------------------------------------------------------------- CLI
def test_opsloop_cli_runs_model_list(
    project: Project,
    trained: TrainedModel,
    lineage: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the real `opsloop` entry point, with the plugin found by its entry point."""
    from opsloop.cli import context, main

    _store(project).register("bc", trained, lineage=lineage)
    monkeypatch.setenv("OPSLOOP_PLUGINS", "mlflow")
    monkeypatch.setitem(context._state, "project", None)
    monkeypatch.setitem(context._state, "plugins", None)
    with pytest.raises(SystemExit) as exit_info:
        main(["--project", str(project.root), "model", "list", "--json"])
    assert exit_info.value.code == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["uri"] == "models:/bc/1"

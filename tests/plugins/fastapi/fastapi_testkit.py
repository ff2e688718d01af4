"""Test kit for the fastapi tests: an in-memory registry serving a real model, a recorder.

The real registry (opsloop-mlflow) is developed separately; this store gives the serving
tests a real scikit-learn LogisticRegression trained on the shipped breast-cancer data,
with a real MLflow-style signature, behind the ``model_store`` hook.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import opsloop_fastapi.plugin
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from opsloop import hookimpl
from opsloop.errors import OpsloopError
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import ModelVersionRef

MODEL = "breast_cancer"
TARGET = "target"


@cache
def breast_cancer() -> pd.DataFrame:
    """The 569-row Wisconsin breast-cancer table shipped with opsloop."""
    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    return pd.read_csv(io.StringIO(text))


def features() -> list[str]:
    return [c for c in breast_cancer().columns if c != TARGET]


@cache
def trained_model() -> Any:
    """A real LogisticRegression (after scaling) fitted on the whole table."""
    data = breast_cancer()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return model.fit(data[features()], data[TARGET])


def signature() -> dict[str, Any]:
    """The signature as a registry would record it: column names and MLflow types."""
    return {
        "inputs": [{"name": f, "type": "double", "required": True} for f in features()],
        "outputs": [{"type": "long", "required": True}],
    }


class MemoryStore:
    """A ModelStore holding model objects in memory (versions, aliases, loads)."""

    name = "memory"

    def __init__(self) -> None:
        self.models: dict[tuple[str, str], Any] = {}
        self.refs: dict[tuple[str, str], ModelVersionRef] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.loads: list[str] = []

    def add(
        self, name: str, model: Any, signature: Mapping[str, Any], aliases: tuple[str, ...] = ()
    ) -> ModelVersionRef:
        version = str(1 + sum(1 for n, _ in self.models if n == name))
        self.models[(name, version)] = model
        self.refs[(name, version)] = ModelVersionRef(
            name=name,
            version=version,
            uri=f"models:/{name}/{version}",
            store=self.name,
            signature=dict(signature),
        )
        for alias in aliases:
            self.set_alias(name, alias, version)
        return self.resolve(name, version)

    def register(self, name: str, trained: Any, *, lineage: Mapping[str, Any]) -> ModelVersionRef:
        sig = {"inputs": [{"name": f, "type": "double"} for f in trained.features]}
        return self.add(name, trained.model, sig)

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        previous = self.aliases.get((name, alias))
        self.aliases[(name, alias)] = version
        return previous

    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        version = self.aliases.get((name, alias_or_version), alias_or_version)
        ref = self.refs.get((name, version))
        if ref is None:
            raise OpsloopError(f"model '{name}' has no alias or version '{alias_or_version}'")
        aliases = sorted(a for (n, a), v in self.aliases.items() if n == name and v == version)
        return ModelVersionRef(
            id=ref.id,
            name=ref.name,
            version=ref.version,
            uri=ref.uri,
            store=ref.store,
            aliases=aliases,
            signature=ref.signature,
        )

    def load(self, ref: ModelVersionRef) -> Any:
        self.loads.append(ref.uri)
        return self.models[(ref.name, ref.version)]


def breast_cancer_store() -> MemoryStore:
    """A store with the breast-cancer model registered as version 1 @champion."""
    store = MemoryStore()
    store.add(MODEL, trained_model(), signature(), aliases=("champion",))
    return store


class RegistryPlugin:
    """Answers the model_store hook with one MemoryStore."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @hookimpl
    def model_store(self, project: Any) -> MemoryStore:
        return self.store


class Forbidden(OpsloopError):
    """A refusal that asks for HTTP 403."""

    status_code = 403


class RecorderPlugin:
    """Records every serve hook call; headers steer it to refuse or to break the input."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def of(self, hook: str, request_id: str) -> list[dict[str, Any]]:
        return [c for h, c in self.calls if h == hook and c["request_id"] == request_id]

    @hookimpl
    def before_predict(self, context: Any) -> None:
        self.calls.append(
            ("before", {"request_id": context.request_id, "rows": len(context.inputs),
                        "version": context.model.version, "outputs": context.outputs})
        )  # fmt: skip
        refuse = context.headers.get("x-test-refuse")
        if refuse == "403":
            raise Forbidden("caller may not use this model")
        if refuse:
            raise OpsloopError("refused by the test policy")
        if context.headers.get("x-test-break"):
            context.inputs = context.inputs.drop(columns=[context.inputs.columns[0]])

    @hookimpl
    def after_predict(self, context: Any) -> None:
        self.calls.append(
            ("after", {"request_id": context.request_id, "outputs": context.outputs,
                       "latency_ms": context.latency_ms, "rows": len(context.inputs)})
        )  # fmt: skip

    @hookimpl
    def on_predict_error(self, context: Any, error: BaseException) -> None:
        self.calls.append(("error", {"request_id": context.request_id, "error": error}))


def open_project(
    root: Path,
    *plugins: tuple[str, Any],
    config: str = "",
    registry: bool = True,
    environ: dict[str, str] | None = None,
) -> Project:
    """A project with built-ins, the fastapi plugin (as "fastapi") and ``plugins``.

    ``environ`` is what the plugin manager reads (``OPSLOOP_TRACE_HOOKS``); default: os.environ.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "opsloop.toml").write_text(config or '[project]\nname = "t"\n', encoding="utf-8")
    manager = make_manager(environ=environ)
    manager.register(opsloop_fastapi.plugin, name="fastapi")
    if registry:
        manager.register(RegistryPlugin(breast_cancer_store()), name="memory-registry")
    for name, plugin in plugins:
        manager.register(plugin, name=name)
    return Project.open(root, plugins=manager)


FAST_LOG = "[plugin.fastapi]\nlog_flush_seconds = 0.05\n"


def store_of(project: Project) -> MemoryStore:
    return project.hook.model_store(project=project)  # type: ignore[no-any-return]


class SlowModel:
    """A model that takes ``seconds`` per predict (timeouts); delegates to ``inner``."""

    def __init__(self, inner: Any, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    def predict(self, frame: Any) -> Any:
        import time

        time.sleep(self.seconds)
        return self.inner.predict(frame)


def one_row(index: int = 0) -> dict[str, float]:
    """One feature row of the shipped data, as a JSON record."""
    return {k: float(v) for k, v in breast_cancer()[features()].iloc[index].items()}


def app_for(project: Project, alias: str = "champion", **settings: Any) -> Any:
    """The scoring app for MODEL@alias of ``project``'s registry, with settings overrides."""
    from opsloop_fastapi.server import open_app
    from opsloop_fastapi.settings import Settings

    base = project.settings("fastapi").model_dump()
    base.update(settings)
    ref = store_of(project).resolve(MODEL, alias)
    return open_app(project, ref, alias=alias, settings=Settings.model_validate(base))


# ---------------------------------------------------------------------- the real registry
ADMIN = "test-admin-token-5f2b9c"


def trained_with_mlflow(root: Path) -> Any:
    """The breast-cancer model trained by opsloop-mlflow's train_model hook."""
    import opsloop_mlflow.plugin

    from opsloop.interfaces import Dataset

    root.mkdir(parents=True, exist_ok=True)
    (root / "opsloop.toml").write_text('[project]\nname = "train"\n', encoding="utf-8")
    project = Project.open(root, plugins=make_manager(opsloop_mlflow.plugin), environ={})
    try:
        data = Dataset(name="breast_cancer", frame=breast_cancer(), load_ids=["t1"])
        return project.hook.train_model(project=project, data=data, target=TARGET, params={})
    finally:
        project.close()


def mlflow_project(root: Path, template: dict[str, Any], config: str = "") -> Project:
    """A project with opsloop-mlflow and this plugin on a copy of the migrated database."""
    import shutil

    import opsloop_mlflow.plugin

    root.mkdir(parents=True, exist_ok=True)
    (root / "opsloop.toml").write_text(
        '[project]\nname = "serve-test"\n' + FAST_LOG + f'admin_token = "{ADMIN}"\n' + config,
        encoding="utf-8",
    )
    (root / ".opsloop").mkdir(exist_ok=True)
    shutil.copy(template["db"], root / ".opsloop" / "mlflow.db")
    manager = make_manager(opsloop_mlflow.plugin)
    manager.register(opsloop_fastapi.plugin, name="fastapi")
    return Project.open(root, plugins=manager, environ={})


def register_versions(project: Project, template: dict[str, Any], count: int) -> list[Any]:
    """Register the trained model ``count`` times (versions 1..count); champion -> 1."""
    from opsloop import registry

    refs = [
        registry.register_model(project, MODEL, template["trained"], {"load_ids": ["t1"]})
        for _ in range(count)
    ]
    registry.set_alias(project, MODEL, "champion", refs[0].version)
    return refs

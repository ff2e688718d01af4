"""opsloop hooks of the MLflow registry plugin; light to import (MLflow loads on first use)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    from opsloop.interfaces import Dataset, TrainedModel
    from opsloop.project import Project
    from opsloop_mlflow.store import MlflowModelStore

NAME = "mlflow"

#: One store per open project: its MLflow client and caches live as long as the project.
_stores: weakref.WeakKeyDictionary[Project, MlflowModelStore] = weakref.WeakKeyDictionary()


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="registry",
        summary="train scikit-learn models; versions, aliases and lineage in an MLflow registry",
        config_model="opsloop_mlflow.settings:Settings",
        vendor_packages=("mlflow", "sklearn"),
    )


def get_store(project: Project) -> MlflowModelStore:
    """This project's MLflow store (settings read and validated on the first call)."""
    store = _stores.get(project)
    if store is None:
        from opsloop_mlflow.settings import resolve
        from opsloop_mlflow.store import MlflowModelStore

        config = resolve(None, project)
        store = MlflowModelStore(config, root=project.root)
        _stores[project] = store
    return store


@hookimpl
def model_store(project: Project) -> MlflowModelStore:
    """The MLflow registry as the project's ModelStore."""
    return get_store(project)


@hookimpl
def train_model(
    project: Project, data: Dataset, target: str, params: dict[str, Any]
) -> TrainedModel:
    """StandardScaler + LogisticRegression on every numeric column but ``target``."""
    from opsloop_mlflow.train import train

    return train(data, target, params)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_mlflow.checks import checks

    return checks(project)

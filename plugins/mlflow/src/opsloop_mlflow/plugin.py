"""opsloop hooks of the MLflow registry plugin; light to import (MLflow loads on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    from opsloop.interfaces import Dataset, TrainedModel
    from opsloop.project import Project
    from opsloop_mlflow.store import MlflowModelStore

NAME = "mlflow"


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        stage="registry",
        summary="train scikit-learn models; versions, aliases and lineage in an MLflow registry",
        config_model="opsloop_mlflow.settings:Settings",
        vendor_packages=("mlflow", "sklearn"),
    )


@hookimpl
def model_store(project: Project) -> MlflowModelStore:
    """The MLflow registry as the project's ModelStore (one per opened project)."""
    from opsloop_mlflow.settings import resolve
    from opsloop_mlflow.store import MlflowModelStore

    return project.memo(
        "mlflow.store", lambda: MlflowModelStore(resolve(None, project), root=project.root)
    )


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

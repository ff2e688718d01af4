"""The registry stage, as the core runs it: whichever plugin answers ``model_store``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    from opsloop.interfaces import CheckResult, ModelStore, TrainedModel
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef


def get_store(project: Project) -> ModelStore:
    """The model registry backend; a clear error when no registry plugin is installed."""
    store = project.hook.model_store(project=project)
    if store is None:
        raise OpsloopError(
            "no model registry plugin is installed; install one, e.g. `pip install opsloop-mlflow`"
        )
    return store  # type: ignore[no-any-return]


def register_model(
    project: Project, name: str, trained: TrainedModel, lineage: Mapping[str, Any]
) -> ModelVersionRef:
    """Register a trained model as a new version; emitted as a record and audited."""
    store = get_store(project)
    project.hook.before_register(project=project, name=name, trained=trained)
    ref = store.register(name, trained, lineage=lineage)
    project.emit(ref)
    project.audit.append(
        "model.register",
        f"{name}/{ref.version}",
        after={
            "uri": ref.uri,
            "store": ref.store,
            "run_id": ref.run_id,
            "load_ids": ref.load_ids,
            "metrics": ref.metrics,
        },
    )
    project.hook.after_register(project=project, ref=ref)
    return ref


def run_gates(project: Project, ref: ModelVersionRef, alias: str) -> list[CheckResult]:
    """Every promotion gate's verdict on moving ``alias`` to ``ref``."""
    results: list[CheckResult] = []
    for group in project.hook.register_promotion_gates(project=project):
        for gate in group or []:
            results.append(gate(ref, alias))
    return results


def set_alias(
    project: Project, name: str, alias: str, version: str, *, force_reason: str = ""
) -> ModelVersionRef:
    """Move ``alias`` to ``version`` after the promotion gates pass; audited either way.

    A failed gate refuses the move (the alias stays where it was) unless ``force_reason``
    is given, which is recorded in the audit log as a forced move.
    """
    store = get_store(project)
    ref = store.resolve(name, version)
    results = run_gates(project, ref, alias)
    failed = [r for r in results if not r.ok]
    if failed and not force_reason:
        project.audit.append(
            "model.alias.refused",
            f"{name}@{alias}",
            after={"version": version},
            detail={"failed": [f"{r.name}: {r.detail}" for r in failed]},
        )
        raise OpsloopError(
            f"promotion of {name} version {version} to '{alias}' refused by gate "
            + "; ".join(f"'{r.name}' ({r.detail})" for r in failed),
            exit_code=1,
        )
    previous = store.set_alias(name, alias, version)
    ref = store.resolve(name, version)
    project.audit.append(
        "model.alias.forced" if failed else "model.alias",
        f"{name}@{alias}",
        before={"version": previous},
        after={"version": version},
        detail={"reason": force_reason, "gates": [r.name for r in results]} if failed else None,
    )
    project.hook.after_promote(project=project, ref=ref, alias=alias, previous=previous)
    return ref

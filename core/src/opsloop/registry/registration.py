"""Registering a model version with its provenance, from a trained model or an existing run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.names import safe_name
from opsloop.registry.access import get_store, governance, read_table

if TYPE_CHECKING:
    from opsloop.interfaces import TrainedModel
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef


def register_model(
    project: Project, name: str, trained: TrainedModel, lineage: Mapping[str, Any]
) -> ModelVersionRef:
    """Register a trained model as a new version; emitted as a record and audited.

    The store records the provenance (training data, code version, parameters, metrics,
    environment, signature, input example, a SHA-256 per artifact file). A refused or
    failed registration leaves no version behind and no audit entry but the refusal.
    """
    safe_name(name, "model name")  # it names folders: model cards, logs, reports
    store = get_store(project)
    project.hook.before_register(project=project, name=name, trained=trained)
    lineage = {**dict(lineage), "registered_by": project.audit.actor}
    ref = store.register(name, trained, lineage=lineage)
    project.emit(
        ref,
        "model.register",
        f"{name}/{ref.version}",
        after={
            "uri": ref.uri,
            "store": ref.store,
            "run_id": ref.run_id,
            "load_ids": ref.load_ids,
            "metrics": ref.metrics,
            "dataset": lineage.get("dataset") or None,
            "content_hash": lineage.get("content_hash") or None,
            "imported_from": lineage.get("imported_from") or None,
        },
    )
    project.hook.after_register(project=project, ref=ref)
    return ref


def register_from(
    project: Project,
    name: str,
    source: str,
    *,
    training_data: str = "",
    target: str = "",
    allow_pickle: bool = False,
) -> ModelVersionRef:
    """Register a model from a run (id or ``runs:/`` URI) or a model path.

    ``training_data`` (``dataset.table``) gives the lineage (load ids, content hash) and,
    when the source has none, the feature columns and the input example. The model is
    read by the store (pickles only with ``allow_pickle``) and registered through
    :func:`register_model`.
    """
    store = get_store(project)
    trained, found = governance(store, "importing a model").import_model(
        source, allow_pickle=allow_pickle
    )
    lineage: dict[str, Any] = dict(found)
    if target:
        trained.target = target
    if training_data:
        data = read_table(project, training_data, "training data")
        frame = data.frame
        target = trained.target or target
        if target and target not in frame.columns:
            shown = ", ".join(str(c) for c in list(frame.columns)[:12])
            raise OpsloopError(
                f"target column '{target}' is not in training data '{training_data}'; "
                f"columns: {shown}; pass --target"
            )
        if not trained.features:
            numeric = frame.select_dtypes(include="number").columns
            trained.features = [str(c) for c in numeric if c != target]
        missing = [f for f in trained.features if f not in frame.columns]
        if missing:
            raise OpsloopError(
                f"training data '{training_data}' lacks the model's feature column(s) "
                + ", ".join(missing[:8])
            )
        if trained.input_example is None or len(trained.input_example) == 0:
            trained.input_example = frame[list(trained.features)].head(5).reset_index(drop=True)
        lineage.update(
            dataset=training_data,
            load_ids=list(data.load_ids),
            content_hash=data.content_hash,
        )
    if trained.input_example is None or len(trained.input_example) == 0:
        raise OpsloopError(
            f"'{source}' carries no input example, so its signature cannot be inferred; "
            "pass --training-data dataset.table (also records the training-data lineage)"
        )
    return register_model(project, name, trained, lineage)

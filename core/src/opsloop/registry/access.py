"""Reaching the registry: the store a plugin answers with, its governance capability, alias
names, the project's move lock and the checks every move shares."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opsloop.errors import IntegrityError, OpsloopError

if TYPE_CHECKING:
    from opsloop.interfaces import ModelGovernance, ModelStore
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef


ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")


def get_store(project: Project) -> ModelStore:
    """The model registry backend; a clear error when no registry plugin is installed."""
    store = project.hook.model_store(project=project)
    if store is None:
        raise OpsloopError(
            "no model registry plugin is installed; install one, e.g. `pip install opsloop-mlflow`"
        )
    return store  # type: ignore[no-any-return]


def has_governance(store: ModelStore) -> bool:
    """True when the store declares the governance capability (provenance, integrity...)."""
    from opsloop.interfaces import GOVERNANCE

    return GOVERNANCE in getattr(store, "capabilities", ())


def governance(store: ModelStore, needed_for: str = "this") -> ModelGovernance:
    """The store's governance capability, or a one-line error saying what needs it."""
    if not has_governance(store):
        raise OpsloopError(
            f"the registry plugin '{getattr(store, 'name', type(store).__name__)}' does not "
            f"offer governance (provenance, artifact hashes, metadata), which {needed_for} "
            "needs; use opsloop-mlflow, or a store that declares "
            "capabilities = frozenset({'governance'})"
        )
    return store  # type: ignore[return-value]


def clean_alias(alias: str) -> str:
    alias = str(alias).strip().lstrip("@")
    if not alias:
        raise OpsloopError("give an alias name, e.g. champion or challenger")
    if not ALIAS_RE.match(alias) or alias == "latest":
        raise OpsloopError(
            f"'{alias}' is not a valid alias; use a word such as 'champion' or 'challenger' "
            "(letters, digits, '_' and '-', starting with a letter; not 'latest')"
        )
    return alias


@contextmanager
def moves_locked(project: Project) -> Iterator[None]:
    """One alias move at a time per project (the history must stay a sequence)."""
    import fcntl

    path = project.path("registry.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def current_version(project: Project, name: str, alias: str) -> str | None:
    """The version ``alias`` points at now, or None when the alias is not set."""
    store = get_store(project)
    try:
        return store.resolve(name, clean_alias(alias)).version
    except IntegrityError:
        raise
    except OpsloopError:
        return None


def require_model(store: ModelStore, name: str) -> None:
    """A one-line error naming what is registered when ``name`` is not."""
    store.list_versions(name)


def check_integrity(project: Project, store: ModelStore, ref: ModelVersionRef) -> None:
    """Refuse a version whose artifacts changed (stores without governance keep no hashes)."""
    if not has_governance(store):
        return
    problems = governance(store).verify(ref)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        exc = IntegrityError(
            f"model {ref.name} v{ref.version}: artifact file {problems[0]} since "
            f"registration{more}; refusing to point an alias at it"
        )
        report_integrity(project, ref.name, ref.version, exc, "promote")
        raise exc


def report_integrity(
    project: Project, model: str, version: str | None, exc: BaseException, during: str
) -> None:
    """Emit an ``integrity`` Signal (critical) for a tampered or unverifiable artifact
    found while loading or promoting; the ``artifact-integrity`` rule opens an incident."""
    from opsloop.records import Signal

    if project.detached:
        return
    project.emit(
        Signal(
            source=f"registry.{during}",
            type="integrity",
            severity="critical",
            subject=model,
            summary=f"{during} refused: {str(exc)[:300]}",
            data={"model": model, "version": version, "during": during},
        )
    )


def read_table(project: Project, table: str, what: str = "table") -> Any:
    """The ``dataset.table`` through the read_dataset hook (a ``Dataset``)."""
    dataset, dot, name = table.partition(".")
    if not dot or not dataset or not name:
        raise OpsloopError(f"{what} '{table}' must be named as dataset.table, e.g. raw.orders")
    data = project.hook.read_dataset(project=project, table=name, dataset=dataset)
    if data is None:
        raise OpsloopError(
            f"no plugin reads dataset tables, so {what} '{table}' cannot be read; "
            "install one, e.g. `pip install opsloop-dlt`"
        )
    return data

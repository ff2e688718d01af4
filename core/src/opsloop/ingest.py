"""The ingest stage, as the core runs it: hooks around a load, a record and an audit entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError, did_you_mean

if TYPE_CHECKING:
    from opsloop.interfaces import DataContract, SourceSpec
    from opsloop.project import Project
    from opsloop.records import LoadRecord


def list_sources(project: Project) -> list[SourceSpec]:
    """Every source plugins register (one per name: see opsloop.registrations)."""
    return project.collect("register_sources")


def get_source(project: Project, name: str) -> SourceSpec:

    sources = {s.name: s for s in list_sources(project)}
    if name not in sources:
        raise OpsloopError(
            f"no source named '{name}'"
            + did_you_mean(name, sources)
            + f" (sources: {', '.join(sorted(sources)) or 'none; declare them in opsloop.toml'})"
        )
    return sources[name]


def list_contracts(project: Project) -> dict[str, DataContract]:
    """Data contracts by name, from every plugin (one per name: see opsloop.registrations)."""
    return {c.name: c for c in project.collect("register_data_contracts")}


def get_contract(project: Project, name: str) -> DataContract:
    contracts = list_contracts(project)
    if name not in contracts:
        raise OpsloopError(
            f"source names data contract '{name}', which no plugin registers"
            f" (contracts: {', '.join(sorted(contracts)) or 'none'})"
        )
    return contracts[name]


def run_load(project: Project, source: SourceSpec) -> LoadRecord:
    """Load one source through the plugin that handles its kind; emit and audit the result."""
    if source.contract:
        get_contract(project, source.contract)  # fail before loading, not half-way
    project.hook.before_load(project=project, source=source)
    try:
        load = project.hook.load_source(project=project, source=source)
    except BaseException as exc:
        project.hook.on_load_error(project=project, source=source, error=exc)
        project.audit.append(
            "ingest.load.failed", source.name, detail={"kind": source.kind, "error": str(exc)}
        )
        if isinstance(exc, Exception):
            _load_failed(project, source, str(exc))
        raise
    if load is None:
        raise OpsloopError(
            f"no installed plugin loads sources of kind '{source.kind}' (source '{source.name}');"
            " install one, e.g. `pip install opsloop-dlt`"
        )
    project.emit(
        load,
        "ingest.load",
        f"{load.dataset}.{source.name}",
        after={
            "load": load.id,
            "status": load.status,
            "rows": load.rows,
            "load_ids": load.load_ids,
        },
    )
    project.hook.after_load(project=project, load=load)
    if load.status == "failed":
        _load_failed(project, source, load.error or "the load reported status failed")
    return load  # type: ignore[no-any-return]


def _load_failed(project: Project, source: SourceSpec, error: str) -> None:
    """Emit a ``load_failed`` Signal (a failed or contract-violating load): the
    ``load-failed`` rule opens an incident and runs the load-failure runbook."""
    from opsloop.records import Signal

    if project.detached:
        return
    violation = "contract" in error.lower() and bool(source.contract)
    project.emit(
        Signal(
            source="ingest",
            type="load_failed",
            severity="critical",
            subject=source.name,
            summary=(
                f"load of {source.name} "
                + ("violated its data contract" if violation else "failed")
                + f": {error[:300]}"
            ),
            data={"source": source.name, "kind": source.kind, "contract": source.contract,
                  "contract_violation": violation},
        )
    )  # fmt: skip

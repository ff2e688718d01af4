"""The opsloop-dlt plugin's hooks: sources from config, loads, reads, commands, checks.

This module imports neither dlt nor pandas: every hook imports what it needs when called,
so ``opsloop --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsloop import hookimpl
from opsloop.interfaces import AlertRule, CheckResult, PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.interfaces import DataContract, Dataset, SourceSpec
    from opsloop.project import Project
    from opsloop.records import LoadRecord

#: Source kinds this plugin loads.
KINDS = ("landing_files", "sql", "rest_api")


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="dlt",
        stage="ingest",
        summary="incremental loads of landing files and SQL tables into DuckDB with dlt",
        config_model="opsloop_dlt.settings:Settings",
        vendor_packages=("dlt", "duckdb", "pandas"),
    )


@hookimpl
def register_sources(project: Project) -> list[SourceSpec]:
    """The sources declared in ``[plugin.dlt] sources``, paths relative to the project root."""
    settings = project.settings("dlt")
    return [s.to_spec(project.root) for s in settings.sources]


@hookimpl
def register_data_contracts(project: Project) -> list[DataContract]:
    """Contracts under ``[plugin.dlt.contracts]`` and in ``contracts/*.toml|json`` files."""
    from opsloop_dlt.contract_files import load_contracts

    return load_contracts(project)


@hookimpl
def register_alert_rules(project: Project) -> list[AlertRule]:
    """Quarantined rows, stale data and schema drift reach people as alerts."""
    return [
        AlertRule(name="contract-violation", signal_type="contract_violation"),
        AlertRule(name="schema-drift", signal_type="schema_drift", open_incident=False),
    ]


@hookimpl
def load_source(project: Project, source: SourceSpec) -> LoadRecord | None:
    """Load a ``landing_files`` or ``sql`` source with dlt; None for any other kind."""
    if source.kind not in KINDS:
        return None
    settings = project.settings("dlt")
    if source.kind == "landing_files":
        from opsloop_dlt.landing import load_landing_files

        return load_landing_files(project, source, settings.csv_chunk_rows)
    if source.kind == "rest_api":
        from opsloop_dlt.rest import load_rest_api

        return load_rest_api(project, source)
    from opsloop_dlt.sql import load_sql_table

    return load_sql_table(project, source)


@hookimpl
def read_dataset(project: Project, table: str, dataset: str) -> Dataset | None:
    """The table as a DataFrame without dlt's columns, its load ids and a content hash."""
    from opsloop_dlt.reader import read_dataset as read

    return read(project, table, dataset)


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop_dlt.cli import register

    register(cli)


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop_dlt.checks import checks

    return checks(project)

"""`opsloop model list|show|alias`: the registry from the command line.

Importing this module costs typer only; MLflow loads when a command runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from opsloop.project import Project
    from opsloop.records import ModelVersionRef
    from opsloop_mlflow.store import MlflowModelStore

model_app = typer.Typer(
    help="Registered models: versions, aliases and lineage (MLflow registry).",
    no_args_is_help=True,
)


def _project() -> Project:
    from opsloop.cli.context import open_project

    return open_project()


def _store(project: Project) -> MlflowModelStore:
    from opsloop_mlflow.plugin import get_store

    return get_store(project)


def _console() -> Console:
    from opsloop.cli.context import console

    return console


def _metrics(ref: ModelVersionRef, limit: int = 3) -> str:
    items = sorted(ref.metrics.items())[:limit]
    return ", ".join(f"{k}={v:.3f}" for k, v in items)


@model_app.command("list")
def list_models(
    name: str = typer.Argument("", help="Only this model's versions."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per version."),
) -> None:
    """Registered models with their versions and aliases."""
    project = _project()
    store = _store(project)
    refs = store.versions(name or None)
    if as_json:
        for ref in refs:
            print(ref.to_json())
        return
    from rich.table import Table

    table = Table(title=f"models in {store.where}", title_justify="left")
    for col in ("model", "version", "aliases", "metrics", "load ids", "run"):
        table.add_column(col, overflow="fold")
    for ref in refs:
        table.add_row(
            ref.name,
            ref.version,
            ", ".join(f"@{a}" for a in ref.aliases),
            _metrics(ref),
            str(len(ref.load_ids)),
            (ref.run_id or "")[:12],
        )
    if not refs:
        _console().print(f"no registered models in {store.where}")
        return
    _console().print(table)


@model_app.command("show")
def show(
    name: str = typer.Argument(..., help="Registered model name."),
    which: str = typer.Argument(
        "latest", metavar="[VERSION|@ALIAS]", help="A version number or @alias (default: latest)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the version as JSON."),
) -> None:
    """One model version: uri, aliases, metrics, lineage and signature."""
    project = _project()
    store = _store(project)
    ref = store.resolve(name, which)
    details = store.describe(ref)
    if as_json:
        data = {**ref.to_dict(), **details}
        data.pop("id", None)
        data.pop("created_at", None)
        data.pop("kind", None)
        print(json.dumps(data, sort_keys=True, indent=2))
        return
    from rich.table import Table

    title = f"{ref.name} version {ref.version}"
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    inputs = ref.signature.get("inputs", [])
    outputs = ref.signature.get("outputs", [])
    rows = [
        ("uri", ref.uri),
        ("aliases", ", ".join(f"@{a}" for a in ref.aliases) or "-"),
        ("created", details["created"]),
        ("run", ref.run_id or "-"),
        ("metrics", ", ".join(f"{k}={v:.4f}" for k, v in sorted(ref.metrics.items())) or "-"),
        ("dataset", details["dataset"] or "-"),
        ("load ids", ", ".join(ref.load_ids) or "-"),
        ("content hash", details["content_hash"] or "-"),
        ("target", details["target"] or "-"),
        ("inputs", f"{len(inputs)}: " + ", ".join(f"{c['name']} ({c['type']})" for c in inputs)),
        ("outputs", ", ".join(f"{c['name']} ({c['type']})" for c in outputs) or "-"),
        ("git commit", details["git_commit"] or "-"),
        ("artifacts", details["artifacts"]),
        ("digest", details["artifact_digest"] or "-"),
    ]
    for field, value in rows:
        table.add_row(field, value)
    _console().print(table)


@model_app.command("alias")
def alias(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help="The version the alias should point at."),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="e.g. champion, challenger."),
    force_reason: str = typer.Option(
        "", "--force-reason", help="Move the alias even if a promotion gate fails (audited)."
    ),
) -> None:
    """Point ALIAS at VERSION after the promotion gates pass (audited)."""
    from opsloop.errors import OpsloopError
    from opsloop.registry import set_alias

    project = _project()
    store = _store(project)
    alias_name = alias_name.lstrip("@")
    try:
        previous: str | None = store.resolve(name, f"@{alias_name}").version
    except OpsloopError:
        previous = None  # a new alias (or no such model: set_alias says so below)
    ref = set_alias(project, name, alias_name, version, force_reason=force_reason)
    moved = f"from version {previous}" if previous and previous != ref.version else "(new alias)"
    if previous == ref.version:
        moved = "(unchanged)"
    _console().print(f"{ref.name}@{alias_name} -> version {ref.version} {moved}")


def register(cli: typer.Typer) -> None:
    """Add ``opsloop model`` to the CLI."""
    cli.add_typer(model_app, name="model")

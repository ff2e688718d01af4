"""`opsloop model ...`: the registry from the command line, through the core's hooks.

Every command reaches the registry through the ``model_store`` hook, so they work with
any registry plugin (opsloop-mlflow by default), against an embedded store or a tracking
server. Importing this module costs typer only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsloop.cli import context

if TYPE_CHECKING:
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef

model_app = typer.Typer(
    help="Registered models: provenance, aliases, promotion gates, rollback, cards, readiness.",
    no_args_is_help=True,
)

VERSION_HELP = "A version number, @alias or 'latest'."


def _project() -> Project:
    return context.open_project()


def _print(text: str) -> None:
    context.console.print(text, highlight=False, markup=False, soft_wrap=True)


def _metrics(values: dict[str, Any], limit: int | None = 3) -> str:
    items = sorted(values.items())[:limit]
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, int | float) else f"{k}={v}" for k, v in items)


def _force_reason(force: bool, reason: str) -> str:
    from opsloop.errors import OpsloopError

    if force and not reason.strip():
        raise OpsloopError("--force needs --reason TEXT: why the gate may be overridden (audited)")
    if reason and not force:
        raise OpsloopError("--reason goes with --force; without --force the gates decide")
    return reason.strip() if force else ""


def _moved(ref: ModelVersionRef, alias: str, previous: str | None) -> str:
    if previous == ref.version:
        return f"{ref.name}@{alias} -> version {ref.version} (unchanged)"
    origin = f"from version {previous}" if previous else "(new alias)"
    return f"{ref.name}@{alias} -> version {ref.version} {origin}"


# ---------------------------------------------------------------------------- read
@model_app.command("list")
def list_models(
    name: str = typer.Argument("", help="Only this model's versions."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per version."),
) -> None:
    """Registered models with their versions and aliases."""
    from opsloop import registry

    project = _project()
    store = registry.get_store(project)
    names = [name] if name else store.list_models()
    refs = [r for n in names for r in store.list_versions(n)]
    if as_json:
        for ref in refs:
            print(ref.to_json())
        return
    if not refs:
        _print(f"no registered models in {getattr(store, 'where', store.name)}")
        return
    from rich.table import Table

    table = Table(title=f"models in {getattr(store, 'where', store.name)}", title_justify="left")
    for col in ("model", "version", "aliases", "metrics", "load ids", "run"):
        table.add_column(col, overflow="fold")
    for ref in refs:
        table.add_row(
            ref.name,
            ref.version,
            ", ".join(f"@{a}" for a in ref.aliases),
            _metrics(ref.metrics),
            str(len(ref.load_ids)),
            (ref.run_id or "")[:12],
        )
    context.console.print(table)


@model_app.command("show")
def show(
    name: str = typer.Argument(..., help="Registered model name."),
    which: str = typer.Argument("latest", metavar="[VERSION|@ALIAS]", help=VERSION_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the version as JSON."),
) -> None:
    """One version's provenance: data, code, parameters, metrics, environment, hashes."""
    from opsloop import registry

    project = _project()
    store = registry.get_store(project)
    ref = store.resolve(name, which)
    prov = registry.governance(store, "model show").provenance(ref)
    if as_json:
        data = {k: v for k, v in ref.to_dict().items() if k not in ("id", "kind")}
        data.update(prov)
        data["metadata"] = registry.metadata(project, ref.name, ref.version)
        print(json.dumps(data, sort_keys=True, indent=2, default=str))
        return
    from rich.table import Table

    data = prov.get("training_data") or {}
    code = prov.get("code") or {}
    env = prov.get("environment") or {}
    files = (prov.get("artifacts") or {}).get("files") or {}
    sig = prov.get("signature") or ref.signature or {}
    inputs = sig.get("inputs", [])
    meta = registry.metadata(project, ref.name, ref.version)
    dirty = code.get("git_dirty")
    rows = [
        ("uri", ref.uri),
        ("aliases", ", ".join(f"@{a}" for a in ref.aliases) or "-"),
        ("registered", f"{prov.get('registered_at') or '-'} by {prov.get('registered_by') or '?'}"),
        ("run", ref.run_id or "-"),
        ("imported from", prov.get("imported_from") or "-"),
        ("metrics", _metrics(prov.get("metrics") or ref.metrics, None) or "-"),
        ("parameters", _metrics(prov.get("parameters") or {}, None) or "-"),
        ("dataset", data.get("dataset") or "-"),
        ("load ids", ", ".join(data.get("load_ids") or []) or "-"),
        ("content hash", data.get("content_hash") or "-"),
        ("target", data.get("target") or "-"),
        ("inputs", f"{len(inputs)}: " + ", ".join(f"{c['name']} ({c['type']})" for c in inputs)),
        ("outputs", ", ".join(f"{c['name']} ({c['type']})" for c in sig.get("outputs", [])) or "-"),
        ("git commit", (code.get("git_commit") or "-") + (" (dirty)" if dirty else "")),
        (
            "environment",
            f"python {env.get('python', '?')}; "
            + ", ".join(f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()))
            if env
            else "-",
        ),
        ("artifacts", (prov.get("artifacts") or {}).get("location") or "-"),
        ("sha-256", "; ".join(f"{k} {v[:16]}…" for k, v in files.items()) or "-"),
        *[(k.replace("_", " "), v) for k, v in sorted(meta.items())],
    ]
    table = Table(
        title=f"{ref.name} version {ref.version}", title_justify="left", show_header=False
    )
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in rows:
        table.add_row(field, str(value))
    context.console.print(table)


@model_app.command("history")
def history(
    name: str = typer.Argument(..., help="Registered model name."),
    as_json: bool = typer.Option(False, "--json", help="Print the history as JSON."),
) -> None:
    """Versions, alias moves and who made them, from the registry and the audit log."""
    from opsloop import registry

    data = registry.history(_project(), name)
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    from rich.table import Table

    versions = Table(title=f"{name}: versions", title_justify="left")
    for col in ("version", "registered", "by", "aliases", "metrics", "run"):
        versions.add_column(col, overflow="fold")
    for v in data["versions"]:
        versions.add_row(
            v["version"],
            str(v["registered_at"])[:19],
            v["registered_by"] or "?",
            ", ".join(f"@{a}" for a in v["aliases"]),
            _metrics(v["metrics"]),
            str(v["run_id"] or "")[:12],
        )
    context.console.print(versions)
    events = Table(title=f"{name}: changes", title_justify="left")
    for col in ("time", "actor", "action", "target", "change", "reason"):
        events.add_column(col, overflow="fold")
    for e in data["events"]:
        before = (e["before"] or {}).get("version") if isinstance(e["before"], dict) else None
        after = (e["after"] or {}).get("version") if isinstance(e["after"], dict) else None
        change = f"{before or '-'} -> {after}" if after else ""
        events.add_row(
            str(e["time"])[:19], e["actor"], e["action"], e["target"], change, e["reason"] or ""
        )
    context.console.print(events)
    for alias, stack in sorted(data["alias_history"].items()):
        _print(f"@{alias} history (oldest first): {' -> '.join(stack) or '-'}")


@model_app.command("verify")
def verify(
    name: str = typer.Argument(..., help="Registered model name."),
    which: str = typer.Argument("", metavar="[VERSION|@ALIAS]", help="Default: every version."),
) -> None:
    """Re-check the SHA-256 of every artifact file; exit 1 naming any that changed."""
    from opsloop import registry

    project = _project()
    store = registry.get_store(project)
    check = registry.governance(store, "model verify").verify
    refs = [store.resolve(name, which)] if which else store.list_versions(name)
    bad = 0
    for ref in refs:
        problems = check(ref)
        if problems:
            bad += 1
            print(
                f"opsloop: {ref.name} v{ref.version}: artifact file {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                file=sys.stderr,
            )
        else:
            _print(f"{ref.name} v{ref.version}: every artifact file matches its SHA-256")
    if bad:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- change
@model_app.command("register")
def register(
    name: str = typer.Argument(..., help="Registered model name (new or existing)."),
    source: str = typer.Argument(
        ..., help="A run id, runs:/<run id>/<path>, an MLflow model folder or a model file."
    ),
    training_data: str = typer.Option(
        "", "--training-data", help="dataset.table the model was trained on (lineage)."
    ),
    target: str = typer.Option("", "--target", help="The target column."),
    allow_pickle: bool = typer.Option(
        False, "--allow-pickle", help="Read a pickle (runs code from the file: trusted files only)."
    ),
) -> None:
    """Register a version from a run or a model path, with its provenance (audited)."""
    from opsloop import registry

    project = _project()
    ref = registry.register_from(
        project,
        name,
        source,
        training_data=training_data,
        target=target,
        allow_pickle=allow_pickle,
    )
    _print(f"registered {ref.name} version {ref.version} ({ref.uri}) from {source}")


@model_app.command("alias")
def alias(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help=VERSION_HELP),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="e.g. champion, challenger."),
    force: bool = typer.Option(False, "--force", help="Override a failed gate (needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why the gate may be overridden."),
) -> None:
    """Point ALIAS at VERSION after the promotion gates pass (audited)."""
    from opsloop import registry

    project = _project()
    alias_name = alias_name.strip().lstrip("@")
    previous = registry.current_version(project, name, alias_name)
    ref = registry.set_alias(
        project, name, alias_name, version, force_reason=_force_reason(force, reason)
    )
    _print(_moved(ref, alias_name, previous))


@model_app.command("promote")
def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help=VERSION_HELP),
    to: str = typer.Option("champion", "--alias", help="The alias to move."),
    force: bool = typer.Option(False, "--force", help="Override a failed gate (needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why the gate may be overridden (audited)."),
) -> None:
    """Run the promotion gate, then move the alias (default champion); exit 1 if refused."""
    from opsloop import registry

    project = _project()
    to = to.strip().lstrip("@")
    force_reason = _force_reason(force, reason)
    previous = registry.current_version(project, name, to)
    ref = registry.promote(project, name, version, alias=to, force_reason=force_reason)
    _print(_moved(ref, to, previous))
    last = next(
        (
            m
            for m in reversed(registry.alias_moves(project, name, to))
            if m.to_version == ref.version
        ),
        None,
    )
    if previous != ref.version and last is not None:
        for check in last.checks:
            _print(f"  {'ok' if check['ok'] else 'FAILED'} {check['name']}: {check['detail']}")
        if not last.checks:
            _print("  no gate configured")
        if last.forced:
            _print(f"  forced: {last.reason}")


@model_app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="Registered model name."),
    to: str = typer.Option("champion", "--alias", help="The alias to move back."),
    reason: str = typer.Option("", "--reason", help="Why (written to the audit log)."),
) -> None:
    """Move the alias (default champion) back to the version it held before (audited)."""
    from opsloop import registry

    project = _project()
    to = to.strip().lstrip("@")
    previous = registry.current_version(project, name, to)
    ref = registry.rollback(project, name, alias=to, reason=reason)
    _print(f"{ref.name}@{to} rolled back to version {ref.version} (was {previous})")


@model_app.command("meta")
def meta(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument("", help="A version (default: the model itself)."),
    owner: str | None = typer.Option(None, "--owner", help="The accountable person."),
    intended_use: str | None = typer.Option(None, "--intended-use", help="What it is for."),
    limitations: str | None = typer.Option(None, "--limitations", help="Known limits."),
    risk_class: str | None = typer.Option(None, "--risk-class", help="e.g. minimal, high."),
    human_oversight: str | None = typer.Option(
        None, "--human-oversight", help="How people oversee or stop it."
    ),
    values: list[str] = typer.Option([], "--set", help="KEY=VALUE; repeat for more."),
) -> None:
    """Show or set governance metadata for model cards (an empty value removes it; audited)."""
    from opsloop import registry
    from opsloop.errors import OpsloopError

    project = _project()
    changes: dict[str, str] = {}
    for key, value in (
        ("owner", owner),
        ("intended_use", intended_use),
        ("limitations", limitations),
        ("risk_class", risk_class),
        ("human_oversight", human_oversight),
    ):
        if value is not None:
            changes[key] = value
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OpsloopError(f"--set '{pair}' is not KEY=VALUE")
        changes[key.strip()] = value
    if changes:
        merged = registry.set_metadata(project, name, version or None, changes)
    else:
        merged = registry.metadata(project, name, version or None)
    where = f"{name} v{version}" if version else name
    if not merged:
        _print(f"{where}: no metadata (set it with `opsloop model meta {name} --owner ...`)")
    for key, value in sorted(merged.items()):
        _print(f"{where} {key}: {value}")


@model_app.command("evidence")
def evidence(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help=VERSION_HELP),
    kind: str = typer.Option(..., "--kind", help="load_test, security_scan or evaluation."),
    file: Path | None = typer.Option(None, "--file", help="A JSON object with the result."),
    passed: bool | None = typer.Option(
        None, "--passed/--failed", help="The verdict (default: the file's 'passed' key)."
    ),
    summary: str = typer.Option("", "--summary", help="One line for people."),
) -> None:
    """Record a load-test, security-scan or evaluation result for a version (audited)."""
    from opsloop import registry

    record = registry.record_evidence(
        _project(), name, version, kind, file=file, passed=passed, summary=summary
    )
    verdict = {True: "passed", False: "failed", None: "no verdict"}[record.passed]
    _print(f"recorded {kind} for {record.model} v{record.version}: {verdict} ({record.id})")


@model_app.command("evaluate")
def evaluate(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument("latest", help=VERSION_HELP),
) -> None:
    """Score a version on the [registry.gate] holdout and record it; exit 1 below threshold."""
    from opsloop import registry
    from opsloop.evaluation import evaluate_version

    project = _project()
    ref = registry.get_store(project).resolve(name, version)
    result, missed = evaluate_version(project, ref)
    _print(f"{ref.name} v{ref.version} on {result.holdout} ({result.rows} rows):")
    for metric, value in sorted(result.metrics.items()):
        _print(f"  {metric} {value:.4f}")
    if missed:
        print(f"opsloop: below threshold: {'; '.join(missed)}", file=sys.stderr)
        raise typer.Exit(1)


@model_app.command("ready")
def ready(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument(..., help=VERSION_HELP),
    to: str = typer.Option("champion", "--alias", help="The alias it would be deployed as."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Go/no-go on the deployment checklist, stored as a record; exit 1 on no-go."""
    from opsloop.readiness import check_readiness

    verdict = check_readiness(_project(), name, version, alias=to.strip().lstrip("@"))
    if as_json:
        print(verdict.to_json())
    else:
        for item in verdict.items:
            _print(f"  {'ok  ' if item['ok'] else 'MISS'} {item['item']}: {item['detail']}")
        word = "GO" if verdict.go else "NO-GO"
        _print(f"{verdict.model} v{verdict.version}: {word} ({verdict.id})")
    if not verdict.go:
        raise typer.Exit(1)


@model_app.command("card")
def card(
    name: str = typer.Argument(..., help="Registered model name."),
    version: str = typer.Argument("", help="Default: @champion, else the latest version."),
    out: Path | None = typer.Option(None, "--out", help="Folder (default: <home>/cards)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the card JSON."),
) -> None:
    """Write the model card as Markdown and JSON; gaps are listed, never filled in."""
    from opsloop.modelcard import write_card

    md, js, data = write_card(_project(), name, version or None, out)
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    gaps = data["gaps"]
    _print(f"model card {md}")
    _print(f"           {js}")
    _print(
        f"{len(gaps)} gap(s): " + ", ".join(g["field"] for g in gaps)
        if gaps
        else "no gaps: every field is recorded"
    )


def register_cli(app: typer.Typer) -> None:
    """Add ``opsloop model`` to the CLI."""
    app.add_typer(model_app, name="model")

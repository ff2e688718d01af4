"""`opsloop incident ...`, `opsloop runbook ...` and `opsloop signals`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from opsloop.cli import context
from opsloop.errors import ParameterError

if TYPE_CHECKING:
    from opsloop.interfaces import RunbookSpec

incident_app = typer.Typer(help="Incidents opened from alerts.", no_args_is_help=True)
runbook_app = typer.Typer(
    help="Runbook and report notebooks: list, inspect, run.", no_args_is_help=True
)


@incident_app.command("list")
def incident_list(
    all_: bool = typer.Option(False, "--all", help="Include resolved incidents."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """List incidents with their current status."""
    from rich.text import Text

    from opsloop.respond import list_incidents

    project = context.open_project()
    views = list_incidents(project, open_only=not all_)
    if as_json:
        context.print_json(
            [
                {
                    **v.incident.to_dict(),
                    "status": v.status,
                    "owner": v.owner,
                    "suppressed": v.suppressed,
                    "runbook_runs": v.runbook_runs,
                }
                for v in views
            ]
        )
        return
    console = context.console
    console.print(
        f"{len(views)} {'' if all_ else 'open '}incident(s)", style="bold", highlight=False
    )
    colour = {"critical": "red", "warning": "yellow", "info": "blue"}
    for view in views:
        i = view.incident
        line = Text.assemble(
            f"{i.id}  {view.status:<12} ",
            (f"{i.severity:<8}", colour.get(i.severity, "white")),
            f" {i.subject}  owner {view.owner or '-'}  opened "
            f"{i.created_at[:16].replace('T', ' ')} UTC, {len(view.runbook_runs)} runbook run(s)"
            + (f", {view.suppressed} suppressed" if view.suppressed else ""),
        )
        console.print(line, highlight=False)
        console.print(f"    {i.title}", highlight=False)


@incident_app.command("show")
def incident_show(
    incident_id: str,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """Show an incident: owner, severity, status, and its timeline (signals, alerts,
    updates, runbook runs, audit entries)."""
    from rich.text import Text

    from opsloop.respond import incident_timeline, incident_view, runbook_runs_for

    project = context.open_project()
    view = incident_view(project, incident_id)
    timeline = incident_timeline(project, incident_id)
    i = view.incident
    runs = runbook_runs_for(project, incident_id)
    if as_json:
        context.print_json(
            {
                **i.to_dict(),
                "status": view.status,
                "owner": view.owner,
                "suppressed": view.suppressed,
                "runbook_runs": [r.to_dict() for r in runs],
                "timeline": [{"at": e.at, "what": e.what, "text": e.text} for e in timeline],
            }
        )
        return
    c = context.console
    c.print(Text.assemble((i.id, "bold"), f" {i.title}"), highlight=False)
    c.print(
        f"severity {i.severity}, status {view.status}, owner {view.owner or '-'}, "
        f"opened {i.created_at}"
        + (f", {view.suppressed} alert(s) suppressed by the rate limit" if view.suppressed else ""),
        highlight=False,
    )
    if i.runbook:
        c.print(f"runbook: {i.runbook}", highlight=False)
    for run in runs:
        c.print(f"  runbook {run.runbook}: {run.status} -> {run.output_path}", highlight=False)
    c.print("timeline:", highlight=False)
    for entry in timeline:
        c.print(f"  {entry.at[:19]} {entry.what:<8} {entry.text}", markup=False, highlight=False)


def _set_status(incident_id: str, status: str, note: str) -> None:
    from opsloop.respond import update_incident

    update_incident(context.open_project(), incident_id, status, note)
    context.console.print(f"{incident_id}: {status}")


@incident_app.command("ack")
def incident_ack(incident_id: str, note: str = typer.Option("", help="Why.")) -> None:
    """Acknowledge an incident (audited)."""
    _set_status(incident_id, "acknowledged", note)


@incident_app.command("resolve")
def incident_resolve(incident_id: str, note: str = typer.Option("", help="What fixed it.")) -> None:
    """Resolve an incident (audited)."""
    _set_status(incident_id, "resolved", note)


@incident_app.command("assign")
def incident_assign(
    incident_id: str,
    owner: str = typer.Argument(..., help="Who owns it now: a person or a team."),
    note: str = typer.Option("", help="Why."),
) -> None:
    """Give an incident a new owner (audited)."""
    from opsloop.respond import assign_incident

    assign_incident(context.open_project(), incident_id, owner, note)
    context.console.print(f"{incident_id}: owner {owner}", highlight=False)


@incident_app.command("mitigate")
def incident_mitigate(
    incident_id: str, note: str = typer.Option("", help="What was done.")
) -> None:
    """Mark an incident mitigated (audited)."""
    _set_status(incident_id, "mitigated", note)


respond_app = typer.Typer(
    help="The respond stage: the Alertmanager receiver.", no_args_is_help=True
)


@respond_app.command("serve")
def respond_serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(9095, help="Port (0: a free one, printed)."),
    token_env: str = typer.Option(
        "", help="Require 'Authorization: Bearer <token>', the token read from this variable."
    ),
    basic_user: str = typer.Option("", help="Require basic auth with this user name."),
    basic_password_env: str = typer.Option(
        "", help="The variable holding the basic-auth password."
    ),
) -> None:
    """Receive Alertmanager webhooks: a firing alert opens or updates an incident and runs
    its rule's runbook; a resolved alert resolves it (docs/alerts.md)."""
    from opsloop.receiver import auth_from_env, make_server

    project = context.open_project()
    auth = auth_from_env(token_env or None, basic_user or None, basic_password_env or None)
    try:
        server = make_server(project, host, port, auth)
    except OSError as exc:
        raise ParameterError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = server.server_address[1]
    context.console.print(
        f"opsloop respond: receiving Alertmanager webhooks on http://{host}:{bound}/alertmanager",
        highlight=False,
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _parameter_rows(spec: RunbookSpec) -> list[dict[str, Any]]:
    from opsloop.runbooks import inspect_parameters

    return [
        {
            "name": p.name,
            "type": p.type,
            "default": None if p.secret else p.default,
            "required": p.required,
            "secret": p.secret,
            "help": p.help,
        }
        for p in inspect_parameters(spec).values()
    ]


def _brief_parameter(row: dict[str, Any]) -> str:
    """``name: type = default`` (``*`` marks a required one, ``(secret)`` a secret)."""
    text = f"{row['name']}: {row['type']}"
    if row["required"]:
        text += " *"
    elif row["secret"]:
        text += " (secret)"
    elif row["default"] not in (None, ""):
        text += f" = {row['default']!r}"
    return text + (f"  {row['help']}" if row["help"] else "")


@runbook_app.command("list")
def runbook_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List runbooks and reports with their parameters (* required); `runbook inspect NAME`
    for help."""
    from rich.table import Table

    from opsloop.runbooks import list_runbooks

    project = context.open_project()
    rows: list[dict[str, Any]] = [
        {
            "name": spec.name,
            "kind": spec.kind,
            "summary": spec.summary,
            "stage": spec.stage,
            "path": str(spec.path),
            "parameters": _parameter_rows(spec),
        }
        for spec in list_runbooks(project)
    ]
    if as_json:
        context.print_json(rows)
        return
    table = Table(title="runbooks and reports (* required)", title_justify="left")
    for col in ("name", "kind", "summary", "parameters"):
        table.add_column(col, overflow="fold")
    for row in rows:
        params = "\n".join(_brief_parameter(p) for p in row["parameters"]) or "-"
        table.add_row(row["name"], row["kind"], row["summary"], params)
    context.console.print(table)


@runbook_app.command("inspect")
def runbook_inspect(
    name: str,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show one runbook: what it does, where it is, and every parameter with its help."""
    from rich.table import Table

    from opsloop.runbooks import get_runbook, read_notebook

    project = context.open_project()
    spec = get_runbook(project, name)
    params = _parameter_rows(spec)
    meta = read_notebook(spec.path).get("metadata", {}).get("opsloop", {})
    declared = meta.get("result", []) if isinstance(meta, dict) else []
    if as_json:
        context.print_json(
            {
                "name": spec.name,
                "kind": spec.kind,
                "summary": spec.summary,
                "path": str(spec.path),
                "parameters": params,
                "result": declared,
            }
        )
        return
    out = context.console
    out.print(f"{spec.name} ({spec.kind}): {spec.summary}", markup=False, highlight=False)
    out.print(f"path: {spec.path}", markup=False, highlight=False)
    table = Table(title="parameters", title_justify="left")
    for col in ("name", "type", "default", "required", "help"):
        table.add_column(col, overflow="fold")
    for p in params:
        default = (
            "(secret)" if p["secret"] else ("" if p["default"] is None else repr(p["default"]))
        )
        table.add_row(p["name"], p["type"], default, "yes" if p["required"] else "", p["help"])
    out.print(table)
    if declared:
        out.print("declares its result: " + ", ".join(map(str, declared)), markup=False)
    out.print(
        f"run it: opsloop runbook run {spec.name}"
        + "".join(f" -P {p['name']}=..." for p in params if p["required"]),
        markup=False,
        highlight=False,
    )


def _skip_iri_grammars() -> None:
    """Keep jsonschema from building its IRI checker in this process.

    papermill imports nbformat, which imports jsonschema; when the optional
    ``rfc3987-syntax`` is installed (guardrails-ai pulls it in through
    ``jsonschema[format-nongpl]``), jsonschema builds 38 Lark grammars at import, about
    2 s of CPU, for ``iri`` format checks that no runbook run makes. This CLI process is
    ours, so the optional import is turned off here (only if jsonschema is not loaded yet).
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _parse_params(pairs: list[str], option: str = "--param") -> dict[str, str]:
    """``KEY=VALUE`` pairs; a bad one is named by its position, never echoed (it may be a
    secret typed without its key)."""
    out: dict[str, str] = {}
    for number, pair in enumerate(pairs, 1):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"{option} value number {number} is not KEY=VALUE")
        out[key.strip()] = value
    return out


def _secret_from_env(name: str, variable: str) -> str:
    """The value of ``variable``, removed from this process's environment so that the
    kernel (and anything else started from here) does not inherit it."""
    if variable not in os.environ:
        raise ParameterError(
            f"--secret-env {name}={variable}: the environment variable '{variable}' is not set"
        )
    return os.environ.pop(variable)


def _secret_from_file(name: str, path: str) -> str:
    """The content of the file at ``path``, without one trailing newline."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(
            f"--secret-file {name}={path}: cannot read the file: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise ParameterError(f"--secret-file {name}={path}: the file is not UTF-8 text") from None
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _gather_secrets(
    spec: RunbookSpec, given: dict[str, str], env_pairs: list[str], file_pairs: list[str]
) -> tuple[dict[str, str], set[str]]:
    """Secret values from --secret-env, --secret-file and, for a required secret still
    missing, a prompt when stdin is a terminal; (values, names passed as secrets)."""
    import getpass

    from opsloop.runbooks import inspect_parameters

    values: dict[str, str] = {}
    for name, variable in _parse_params(env_pairs, "--secret-env").items():
        values[name] = _secret_from_env(name, variable.strip())
    for name, path in _parse_params(file_pairs, "--secret-file").items():
        if name in values:
            raise ParameterError(f"secret '{name}' is given by both --secret-env and --secret-file")
        values[name] = _secret_from_file(name, path)
    for name in values:
        if name in given:
            raise ParameterError(f"parameter '{name}' is given by both -P and a --secret-* option")
    declared = inspect_parameters(spec)
    missing = [
        p.name
        for p in declared.values()
        if p.secret and p.required and p.name not in given and p.name not in values
    ]
    if missing and sys.stdin.isatty():
        for name in missing:
            values[name] = getpass.getpass(f"{name} (secret, not echoed): ")
    elif missing:
        raise ParameterError(
            f"runbook '{spec.name}': missing secret parameter '{missing[0]}'; pass it with "
            f"--secret-env {missing[0]}=VARIABLE or --secret-file {missing[0]}=PATH "
            "(or run in a terminal to be asked for it)"
        )
    on_command_line = [k for k in given if k in declared and declared[k].secret]
    if on_command_line:
        print(
            f"opsloop: warning: secret parameter '{on_command_line[0]}' given with -P, which "
            "`ps` shows to every user; prefer --secret-env, --secret-file or the prompt",
            file=sys.stderr,
        )
    secret_given = [given[k] for k in on_command_line]
    context.keep_secrets([*values.values(), *secret_given])  # out of all printed from here
    return values, set(values)


@runbook_app.command("run")
def runbook_run(
    name: str,
    param: list[str] = typer.Option([], "--param", "-P", help="KEY=VALUE; repeat for more."),
    secret_env: list[str] = typer.Option(
        [],
        "--secret-env",
        help="NAME=VARIABLE: a secret parameter from an environment variable (then removed "
        "from the environment the kernel inherits); repeat for more.",
    ),
    secret_file: list[str] = typer.Option(
        [],
        "--secret-file",
        help="NAME=PATH: a secret parameter from a file (one trailing newline dropped); "
        "repeat for more.",
    ),
    incident: str = typer.Option("", help="Incident id to link the run to."),
    timeout: float | None = typer.Option(
        None,
        help="Seconds per cell.",
        show_default="[respond] runbook_timeout",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
) -> None:
    """Run a runbook with typed parameters; the executed copy is kept under the project home.

    A required secret parameter that is not given is asked for (not echoed) when stdin is
    a terminal; --secret-env and --secret-file keep a secret off the command line, where
    `ps` shows it.
    """
    _skip_iri_grammars()
    from opsloop.runbooks import get_runbook, run_runbook

    project = context.open_project()
    given = _parse_params(param)
    spec = get_runbook(project, name)
    secrets, secret_names = _gather_secrets(spec, given, secret_env, secret_file)
    run = run_runbook(
        project,
        name,
        {**given, **secrets},
        incident_id=incident or None,
        timeout=timeout,
        secret_parameters=secret_names,
    )
    if as_json:
        context.print_json(run.to_dict())
    if run.status != "succeeded":
        print(f"opsloop: runbook '{name}' failed: {run.error} (see {run.output_path})",
              file=sys.stderr)  # fmt: skip
        raise typer.Exit(1)
    if as_json:
        return
    out = context.console
    out.print(f"runbook {name}: {run.status} -> {run.output_path} ({run.id})", markup=False)
    if run.html_path:
        out.print(f"html: {run.html_path}", markup=False, highlight=False)
    for key in ("summary", "recommendation"):
        if run.result.get(key):
            out.print(f"{key}: {run.result[key]}", markup=False, highlight=False)


def signals_command(
    limit: int = typer.Option(20, "--limit", "-n", help="Newest N signals (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the newest signals from monitors and guards."""
    from rich.table import Table

    from opsloop.records import Signal

    project = context.open_project()
    if as_json:
        context.print_json([s.to_dict() for s in project.records.list(Signal, limit=limit or None)])
        return
    table = Table(title="signals", title_justify="left")
    for col in ("id", "time", "type", "severity", "subject", "summary"):
        table.add_column(col, overflow="fold")
    for s in project.records.list(Signal, limit=limit):
        table.add_row(s.id, s.created_at[:19], s.type, s.severity, s.subject, s.summary)
    context.console.print(table)


def register_cli(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")
    app.add_typer(runbook_app, name="runbook")
    app.add_typer(respond_app, name="respond")
    app.command("signals")(signals_command)

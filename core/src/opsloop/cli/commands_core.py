"""Core commands: plugins (list, new), doctor, init, demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from opsloop.cli import context

if TYPE_CHECKING:
    from opsloop.plugins import PluginEntry


def plugins_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List plugins (as `plugins list`), or make one with `plugins new`."""
    if ctx.invoked_subcommand is None:
        plugins_list_command(as_json)


def plugins_list_command(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List plugins: name, version, stage, hooks, status. Exit 2 if one failed or is misconfigured.

    The plugins listed are the ones the project runs: the same [plugins] table and
    OPSLOOP_PLUGINS* variables, and each plugin's settings checked as the project checks them.
    No vendor SDK is imported (`opsloop doctor` goes further and calls every plugin).
    """
    import json

    from rich.table import Table
    from rich.text import Text

    manager = context.plugins()
    project = context.open_project(detached_ok=True)
    config_errors = project.settings_errors()
    entries = list(manager.entries.values())

    def status(e: PluginEntry) -> tuple[str, str | None]:
        if not e.ok:
            return "failed", e.error
        name = e.info.name if e.info is not None else e.name
        if name in config_errors:
            return "misconfigured", config_errors[name]
        return "ok", None

    if as_json:
        rows = [
            {
                "name": e.name,
                "source": e.source,
                "version": e.version,
                "stage": e.info.stage if e.info else "",
                "summary": e.info.summary if e.info else "",
                "hooks": e.hooks,
                "status": status(e)[0],
                "error": status(e)[1],
            }
            for e in entries
        ]
        print(json.dumps({"plugins": rows}, indent=2))
    else:
        table = Table(title="opsloop plugins", title_justify="left")
        for col in ("plugin", "version", "stage", "hooks implemented", "status"):
            table.add_column(col, overflow="fold")
        for e in entries:
            version = e.version or ("built-in" if e.source == "builtin" else e.source)
            state, error = status(e)
            shown = (
                Text("ok", "green")
                if state == "ok"
                else Text.assemble((state, "red"), f": {error or ''}")
            )
            stage = e.info.stage if e.info else "?"
            table.add_row(e.name, version, stage, ", ".join(e.hooks) or "-", shown)
        context.console.print(table)
    if any(status(e)[0] != "ok" for e in entries):
        raise typer.Exit(2)


def plugins_new_command(
    name: str = typer.Argument(
        ..., help="Plugin name: lower-case letters, digits and '_' (the package: opsloop_NAME)."
    ),
    stage: str = typer.Option(
        ...,
        "--stage",
        "-s",
        help="The stage it plugs into: core, ingest, registry, serve, "
        "monitor, guard, respond or jupyter.",
    ),
    path: Path = typer.Option(
        Path("."), "--path", help="Folder to write the package folder (opsloop-NAME) into."
    ),
) -> None:
    """Write a pip-installable plugin package for STAGE whose tests pass as written.

    It implements the stage's first hook, with a settings model, a doctor check and a test
    through the core's own code path; see docs/writing-a-plugin.md.
    """
    from importlib.metadata import entry_points

    from opsloop.plugins import ENTRY_POINT_GROUP
    from opsloop.scaffold import new_plugin

    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    made = new_plugin(name, stage, path, taken=installed)
    print(f"wrote {made.folder}: a {made.stage} plugin '{made.name}' ({', '.join(made.hooks)})")
    for file in made.files:
        print(f"  {file}")
    shown = made.folder if path != Path(".") else made.folder.name
    print(f"next: cd {shown} && pip install -e '.[test]' && pytest")


def doctor_command() -> None:
    """Check the project, its plugins and their backends; exit 1 when a check fails."""
    from rich.table import Table
    from rich.text import Text

    from opsloop.errors import one_line
    from opsloop.interfaces import CheckResult
    from opsloop.registrations import call_each

    project = context.open_project(detached_ok=True)
    results: list[CheckResult] = []
    for entry in project.plugins.entries.values():
        results.append(
            CheckResult(f"plugin {entry.name} loads", entry.ok, entry.error or "", entry.name)
        )
    for plugin, answers in call_each(project, "register_checks"):
        if isinstance(answers, BaseException):  # a check must never take doctor down
            results.append(CheckResult(f"checks of {plugin}", False, one_line(answers), plugin))
            continue
        for group in answers:
            results.extend(group or [])
    table = Table(title=f"opsloop doctor: {project.root}", title_justify="left")
    for col in ("check", "plugin", "result", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(
            r.name, r.plugin, Text("ok", "green") if r.ok else Text("FAIL", "red"), r.detail
        )
    context.console.print(table)
    failed = [r for r in results if not r.ok]
    if failed:
        context.err_console.print(f"{len(failed)} check(s) failed", style="red")
        raise typer.Exit(1)


def init_command(
    path: Path = typer.Argument(Path("."), help="Folder to create the project in."),
    name: str = typer.Option("", help="Project name (default: the folder name)."),
    force: bool = typer.Option(False, help="Overwrite an existing opsloop.toml."),
) -> None:
    """Write a commented starter opsloop.toml."""
    from opsloop.config import CONFIG_FILE, STARTER
    from opsloop.errors import OpsloopError

    path = path.resolve()
    target = path / CONFIG_FILE
    if target.exists() and not force:
        raise OpsloopError(f"{target} already exists; use --force to overwrite it")
    path.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".toml.tmp")
    tmp.write_text(STARTER.format(name=name or path.name), encoding="utf-8")
    tmp.replace(target)
    from opsloop.config import load_config
    from opsloop.project import make_home

    config = load_config(target, {})
    make_home((path / config.project.home).resolve(), config.project.share_group)
    context.console.print(f"wrote {target}")


def demo_command(
    path: Path | None = typer.Argument(
        None, help="Project folder for the demo (default: a new temporary folder)."
    ),
) -> None:
    """Run the whole loop once on embedded defaults: ingest, register, serve, monitor,
    guard, respond."""
    from opsloop.demo import run_demo

    summary = run_demo(path, plugins=context._state["plugins"])  # type: ignore[arg-type]
    if not summary.ok:
        raise typer.Exit(1)


def register_cli(app: typer.Typer) -> None:
    plugins = typer.Typer(invoke_without_command=True)  # bare `opsloop plugins` lists
    plugins.callback()(plugins_command)
    plugins.command("list")(plugins_list_command)
    plugins.command("new")(plugins_new_command)
    app.add_typer(plugins, name="plugins")
    app.command("doctor")(doctor_command)
    app.command("init")(init_command)
    app.command("demo")(demo_command)

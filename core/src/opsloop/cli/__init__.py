"""The ``opsloop`` command line: core commands plus whatever plugins add.

Start-up stays fast: plugins are discovered (their light entry modules only), no vendor
SDK is imported until a command needs it, and errors are one line with exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from opsloop import __version__
from opsloop.cli import context

app = typer.Typer(
    name="opsloop",
    help="opsloop: ingest, serve, monitor, guard and respond for production ML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: typer's rich help costs 0.13 s at start-up
)


def _version(value: bool) -> None:
    if value:
        print(f"opsloop {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    project: Path | None = typer.Option(
        None,
        "--project",
        "-p",
        help="Project folder or opsloop.toml (default: search up from cwd).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """opsloop: ingest, serve, monitor, guard and respond for production ML."""
    context.set_project_path(project)


def _register_core_commands() -> None:
    from opsloop.cli import commands_audit, commands_core, commands_model, commands_respond

    commands_core.register(app)
    commands_audit.register(app)
    commands_respond.register(app)
    commands_model.register_commands(app)


def _project_arg(argv: list[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg in ("--project", "-p") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--project="):
            return Path(arg.split("=", 1)[1])
    return None


def _build_plugins(argv: list[str]) -> None:
    """Load plugins before parsing, so their commands appear in --help."""
    from opsloop.config_files import CONFIG_FILE, find_config, read_plugin_settings
    from opsloop.errors import OpsloopError
    from opsloop.plugins import PluginManager

    target = _project_arg(argv) or (
        Path(os.environ["OPSLOOP_PROJECT"]) if os.environ.get("OPSLOOP_PROJECT") else None
    )
    try:
        if target is None:
            path = find_config(Path.cwd())
        elif target.suffix == ".toml":
            path = target if target.is_file() else None
        else:
            path = target / CONFIG_FILE if (target / CONFIG_FILE).is_file() else None
        root = path.parent if path else Path.cwd()
        settings = read_plugin_settings(path)
        kwargs = {
            "enabled": settings.get("enabled", []),
            "disabled": settings.get("disabled", []),
            "paths": [root / p for p in settings.get("paths", [])],
            "order": settings.get("order", []),
        }
    except (OpsloopError, TypeError):
        kwargs = {}  # the command that opens the project reports it
    manager = PluginManager(**kwargs).load()  # type: ignore[arg-type]
    context.set_plugins(manager)
    manager.hook.register_commands(cli=app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    import click

    from opsloop.errors import OpsloopError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _register_core_commands()
        _build_plugins(args)
        result = app(args=args, prog_name="opsloop", standalone_mode=False)
        sys.exit(result if isinstance(result, int) else 0)
    except click.exceptions.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help text was already printed
        where = (
            f"opsloop {exc.ctx.command_path.split(' ', 1)[1]}"
            if exc.ctx and " " in exc.ctx.command_path
            else "opsloop"
        )
        print(f"opsloop: error: {exc.format_message()} (see `{where} --help`)", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("opsloop: aborted", file=sys.stderr)
        sys.exit(1)
    except click.exceptions.ClickException as exc:
        print(f"opsloop: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OpsloopError as exc:
        context.err_console.print(
            f"opsloop: error: {exc}", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("opsloop: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("OPSLOOP_DEBUG"):
            raise
        from opsloop.errors import one_line

        print(
            f"opsloop: internal error: {one_line(exc)} "
            "(re-run with OPSLOOP_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        sys.exit(70)

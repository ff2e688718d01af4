"""The ``opsloop`` command line: core commands plus whatever plugins add.

Start-up stays fast: plugins are discovered (their light entry modules only), no vendor
SDK is imported until a command needs it, and errors are one line with exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from opsloop import __version__
from opsloop.cli import context


class _SortedGroup(TyperGroup):
    """Commands in --help sorted by name, whichever plugin added them."""

    def list_commands(self, ctx: object) -> list[str]:
        return sorted(self.commands)


app = typer.Typer(
    cls=_SortedGroup,
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


def _project_arg(argv: list[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg in ("--project", "-p") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--project="):
            return Path(arg.split("=", 1)[1])
    return None


def _build_plugins(argv: list[str]) -> None:
    """Load plugins before parsing, so their commands appear in --help.

    The manager is built exactly as :meth:`opsloop.project.Project.open` builds it (the
    ``[plugins]`` table and OPSLOOP_PLUGINS__* variables), without validating the whole
    config, which keeps start-up fast. A config that cannot be read leaves the built-ins
    and installed plugins, and the error is raised by the first command that needs it.
    """
    from opsloop.config_files import plugin_selection
    from opsloop.errors import OpsloopError
    from opsloop.plugins import PluginManager
    from opsloop.project import locate

    try:
        config_path, _ = locate(_project_arg(argv), os.environ)
        root = config_path.parent if config_path else Path.cwd()
        manager = PluginManager.from_selection(plugin_selection(config_path, os.environ), root)
    except OpsloopError as exc:
        context.set_config_error(exc)
        manager = PluginManager.from_selection({}, Path.cwd())
    context.set_plugins(manager)
    manager.hook.register_commands(cli=app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    import click

    from opsloop.errors import OpsloopError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
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

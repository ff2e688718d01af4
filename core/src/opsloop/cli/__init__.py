"""The ``opsloop`` command line: core commands plus whatever plugins add.

Start-up stays fast: plugins are discovered (their light entry modules only), no vendor
SDK is imported until a command needs it, and errors are one line with exit code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
import typer.main
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


def _click_errors() -> tuple[tuple[type[BaseException], ...], ...]:
    """(usage errors, other click errors, aborts, no-args-is-help), as typer raises them.

    typer up to 0.25 raises click's exceptions; from 0.26 it raises those of the click copy
    it bundles (``typer._click``), which ``except click.UsageError`` does not catch. The
    module ``typer.BadParameter`` comes from is the one typer raises from, whatever the
    version; click's own is added when something imported it (a plugin may raise it).
    """
    import importlib

    modules = [importlib.import_module(typer.BadParameter.__module__)]
    if "click.exceptions" in sys.modules and sys.modules["click.exceptions"] not in modules:
        modules.append(sys.modules["click.exceptions"])

    def named(name: str) -> tuple[type[BaseException], ...]:
        return tuple(getattr(m, name) for m in modules if hasattr(m, name))

    # typer >= 0.28 keeps Abort outside its click copy
    aborts: tuple[type[BaseException], ...] = (typer.Abort, *named("Abort"))
    # click >= 8.2 raises NoArgsIsHelpError (a UsageError) for `opsloop` and `opsloop model`
    # alone; older click prints the help and exits 0 itself.
    return named("UsageError"), named("ClickException"), aborts, named("NoArgsIsHelpError")


def _plain_help(command: Any) -> None:
    """Print ``[default: x]`` and ``[required]`` in help as written, with every typer.

    typer 0.13 to 0.28 escape them for rich (``\\[required]``) even when help is click's
    plain text, as here; a help formatter that drops the escape is set on every command
    through click's documented ``Command.context_class``/``Context.formatter_class``.
    """
    base = command.context_class

    class _Formatter(base.formatter_class):  # type: ignore[misc,name-defined]
        def getvalue(self) -> str:
            return str(super().getvalue()).replace("\\[", "[")

    context_class = type("OpsloopContext", (base,), {"formatter_class": _Formatter})
    stack = [command]
    while stack:
        cmd = stack.pop()
        if cmd.context_class is base:
            cmd.context_class = context_class
        stack.extend(getattr(cmd, "commands", {}).values())


def _where(exc: Any) -> str:
    ctx = getattr(exc, "ctx", None)
    path = str(getattr(ctx, "command_path", "") or "")
    return f"opsloop {path.split(' ', 1)[1]}" if " " in path else "opsloop"


def _is(exc: Any, types: tuple[type[BaseException], ...]) -> bool:
    return isinstance(exc, types)  # a call, so mypy keeps exc as Any (types vary by version)


def _exit_on_click_error(exc: Any) -> None:
    """Exit with one line if ``exc`` is typer's or click's; return if it is neither."""
    usage_errors, click_errors, aborts, no_args_help = _click_errors()
    if _is(exc, no_args_help):
        print(exc.format_message())  # the help text, as `--help` prints it
        sys.exit(0)
    if _is(exc, usage_errors):
        message = " ".join(str(exc.format_message()).split())
        print(f"opsloop: error: {message} (see `{_where(exc)} --help`)", file=sys.stderr)
        sys.exit(2)
    if _is(exc, aborts):
        print("opsloop: aborted", file=sys.stderr)
        sys.exit(1)
    if _is(exc, click_errors):
        print(f"opsloop: error: {' '.join(str(exc.format_message()).split())}", file=sys.stderr)
        sys.exit(exc.exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: usage errors are one line on stderr and exit 2."""
    try:
        _main(argv)
    except BrokenPipeError:  # `opsloop ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


def _main(argv: list[str] | None) -> None:
    try:
        _run_command(argv)
    finally:
        context.drop_secrets()  # after the error line was printed, scrubbed


def _run_command(argv: list[str] | None) -> None:
    from opsloop.errors import OpsloopError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _build_plugins(args)
        command = typer.main.get_command(app)
        _plain_help(command)
        result = command.main(args=args, prog_name="opsloop", standalone_mode=False)
        sys.exit(result if isinstance(result, int) else 0)
    except OpsloopError as exc:
        from opsloop.redact import redact_text  # secrets a command read never printed

        context.err_console.print(
            f"opsloop: error: {redact_text(str(exc))}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("opsloop: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        _exit_on_click_error(exc)
        if os.environ.get("OPSLOOP_DEBUG"):
            raise
        from opsloop.errors import one_line
        from opsloop.redact import redact_text

        print(
            f"opsloop: internal error: {redact_text(one_line(exc))} "
            "(re-run with OPSLOOP_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        sys.exit(70)

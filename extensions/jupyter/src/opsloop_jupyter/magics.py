"""``%opsloop`` and ``%opsloop_project``: the CLI and the project, inside a kernel.

``%opsloop incident list`` runs exactly what ``opsloop incident list`` runs, in the kernel,
from the notebook's folder (so the project is found the way the CLI finds it). Output is
captured: ``--json`` output becomes an HTML table, rich output is exported as HTML. A
failing command shows its one error line and its exit code; it never kills the cell.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class


@dataclass
class CliResult:
    """What one ``%opsloop`` command printed, and its exit code."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    rich_html: str = ""

    @property
    def data(self) -> Any:
        """The parsed ``--json`` output (None when the command printed no JSON)."""
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None

    def __repr__(self) -> str:
        return (self.stdout + self.stderr).rstrip() or f"(exit {self.exit_code})"

    def _repr_html_(self) -> str:
        parts: list[str] = []
        data = self.data if "--json" in self.args else None
        if data is not None:
            parts.append(to_html_table(data))
        elif self.rich_html:
            parts.append(self.rich_html)
        elif self.stdout.strip():
            parts.append(f"<pre>{html.escape(self.stdout)}</pre>")
        if self.stderr.strip():
            colour = "#b00020" if self.exit_code else "#8a6d00"
            parts.append(f'<pre style="color:{colour}">{html.escape(self.stderr.strip())}</pre>')
        if self.exit_code:
            parts.append(f"<small>exit code {self.exit_code}</small>")
        return '<div class="opsloop-cli">' + "".join(parts) + "</div>"


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, default=str)
    return html.escape("" if value is None else str(value))


def to_html_table(data: Any) -> str:
    """A JSON value as HTML: a list of objects as a table, an object as key/value rows."""
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        columns: list[str] = []
        for row in data:
            columns.extend(k for k in row if k not in columns)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
            for row in data
        )
        return (
            f'<table class="opsloop-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    if isinstance(data, dict):
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in data.items()
        )
        return f'<table class="opsloop-table">{rows}</table>'
    if isinstance(data, list) and not data:
        return "<p><em>(none)</em></p>"
    return f"<pre>{_cell(data)}</pre>"


def run_cli(args: list[str]) -> CliResult:
    """Run ``opsloop <args>`` in this process, as the console script does; capture it."""
    from rich.console import Console

    from opsloop.cli import context, main

    out, err = io.StringIO(), io.StringIO()
    record = Console(
        file=io.StringIO(), record=True, markup=False, width=120, color_system="truecolor"
    )
    saved = context.console, context.err_console
    context.console = record
    context.err_console = Console(file=err, markup=False, width=120)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        context.console, context.err_console = saved
    rich_text = record.export_text(clear=False)
    rich_html = ""
    if rich_text.strip():
        rich_html = record.export_html(
            inline_styles=True, code_format='<pre style="font-family:monospace">{code}</pre>'
        )
    return CliResult(
        list(args),
        code,
        out.getvalue() + ("" if rich_html else rich_text),
        err.getvalue(),
        rich_html,
    )


def open_project(path: str | Path | None = None) -> Any:
    """Open the project at ``path``, or the one of the current (the notebook's) folder,
    searched up exactly as the CLI searches; a folder that is no project is refused."""
    from opsloop.project import Project

    return Project.open(path)


@magics_class
class OpsloopMagics(Magics):
    """``%opsloop ARGS`` and ``%opsloop_project [PATH]``."""

    @line_magic
    def opsloop(self, line: str) -> CliResult:
        """Run an opsloop CLI command in the kernel: ``%opsloop incident list --json``."""
        return run_cli(shlex.split(line))

    @line_magic
    def opsloop_project(self, line: str) -> Any:
        """Open the project of the notebook's folder (or PATH) and bind it as ``project``."""
        from IPython.core.error import UsageError

        from opsloop.errors import OpsloopError

        try:
            project = open_project(line.strip() or None)
        except OpsloopError as exc:  # one red line, no traceback: the CLI's refusal
            raise UsageError(f"opsloop: error: {exc}") from None
        if self.shell is not None:
            self.shell.user_ns["project"] = project
        return project

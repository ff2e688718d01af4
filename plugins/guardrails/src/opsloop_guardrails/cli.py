"""``opsloop guard scan``: run every installed scanner over a text, as the guard stage does."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from opsloop.errors import OpsloopError

app = typer.Typer(
    name="guard",
    help="Scan text with the guard scanners (prompt injection, PII, secrets).",
    no_args_is_help=True,
)

_STYLE = {"allow": "green", "redact": "yellow", "block": "bold red"}


def read_input(text: str | None, file: Path | None) -> str:
    """The text to scan, from the argument or from ``--file`` (``-`` reads stdin)."""
    if text is None and file is None:
        raise OpsloopError("nothing to scan: give the text as an argument or with --file PATH")
    if text is not None and file is not None:
        raise OpsloopError("give the text to scan as an argument or with --file, not both")
    if text is not None:
        return text
    assert file is not None
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OpsloopError(f"--file {file}: no such file") from None
    except IsADirectoryError:
        raise OpsloopError(f"--file {file}: is a folder; give a text file") from None
    except UnicodeDecodeError:
        raise OpsloopError(f"--file {file}: not UTF-8 text") from None
    except OSError as exc:
        raise OpsloopError(f"--file {file}: cannot read it ({exc.strerror})") from None


@app.command("scan")
def scan_command(
    text: str | None = typer.Argument(None, help="The text to scan (or use --file)."),
    target: str = typer.Option(
        "input", "--target", "-t", help="What the text is: input, retrieved, tool_output, output."
    ),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Read the text from this file ('-' reads stdin)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Scan TEXT with every scanner: verdict, redacted text, findings. Exit 1 when blocked."""
    from opsloop_guardrails.scanners import check_target

    check_target(target)
    content = read_input(text, file)

    from opsloop.cli.context import console, open_project
    from opsloop.guard import scan_text

    project = open_project(detached_ok=True)  # a scan needs no project; nothing is written
    result = scan_text(project, content, target=target)
    if as_json:
        import dataclasses
        import json

        print(
            json.dumps(
                {
                    "verdict": result.verdict,
                    "text": result.text,
                    "target": target,
                    "scanners": {r.scanner: r.verdict for r in result.results},
                    "findings": [dataclasses.asdict(f) for f in result.findings],
                    "signal_id": result.signal_id,
                },
                indent=2,
            )
        )
    else:
        from rich.table import Table
        from rich.text import Text

        line = Text("verdict: ")
        line.append(result.verdict.upper(), style=_STYLE.get(result.verdict, ""))
        if result.signal_id:
            line.append(f"  (signal {result.signal_id})")
        console.print(line)
        console.print(Text("text: ") + Text(result.text))  # Text: scanned text is not markup
        if result.findings:
            table = Table(title="findings", title_justify="left")
            for col in ("scanner", "type", "span", "detail"):
                table.add_column(col, overflow="fold")
            for f in result.findings:
                span = f"{f.start}-{f.end}" if f.start >= 0 else "-"
                table.add_row(Text(f.scanner), Text(f.type), span, Text(f.detail))
            console.print(table)
    if result.blocked:
        raise typer.Exit(1)


def register(cli: typer.Typer) -> None:
    """Add ``opsloop guard ...`` to the CLI."""
    cli.add_typer(app, name="guard")

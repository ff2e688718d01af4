"""``opsloop guard scan`` (every installed scanner over a text, as the guard stage does) and
``opsloop guard eval`` (detection quality and latency on a labelled JSON-lines file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from opsloop.errors import OpsloopError

app = typer.Typer(
    name="guard",
    help="Scan text with the guard scanners (prompt injection, PII, secrets); evaluate them.",
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
    from opsloop.guard.scanners import check_target

    check_target(target)
    content = read_input(text, file)

    from opsloop.cli.context import console, open_project
    from opsloop.guard import scan_text

    project = open_project(detached_ok=True)  # a scan needs no project; nothing is written
    result = scan_text(project, content, target=target)  # type: ignore[arg-type]
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
            for col in ("scanner", "type", "tier", "span", "detail"):
                table.add_column(col, overflow="fold")
            for f in result.findings:
                span = f"{f.start}-{f.end}" if f.start >= 0 else "-"
                table.add_row(Text(f.scanner), Text(f.type), Text(f.tier), span, Text(f.detail))
            console.print(table)
    if result.blocked:
        raise typer.Exit(1)


def _guard_settings() -> Any:
    """``[plugin.guard]`` of the project here, if any (opened detached: nothing is written),
    else the defaults."""
    from opsloop.cli.context import open_project

    return open_project(detached_ok=True).settings("guard")


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command("eval")
def eval_command(
    file: Path = typer.Argument(..., help="JSON lines: {text, label, category[, target]}."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    no_model: bool = typer.Option(False, "--no-model", help="The rules tier alone."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Model score that blocks (default: the model's).",
    ),
) -> None:
    """Recall, false-positive rate and F1 per category and overall, and latency percentiles.

    Runs the built-in prompt_injection scanner (settings from [plugin.guard], if any) over
    every line. Offline; writes nothing.
    """
    from opsloop.cli.context import console
    from opsloop.guard.evaluate import evaluate, injection_detector, read_examples
    from opsloop.guard.scanners import InjectionScanner

    settings = _guard_settings()
    examples = read_examples(file)
    scanner = InjectionScanner(
        settings.injection_patterns,
        use_model=settings.model and not no_model,
        threshold=threshold if threshold is not None else settings.threshold,
    )
    detector = injection_detector(scanner)
    detector(examples[0])  # load the model before timing
    if as_json:
        report = evaluate(examples, detector)
        print(json.dumps({"file": str(file), "rows": len(examples), **report.as_dict()}, indent=2))
        return
    from rich.progress import Progress
    from rich.table import Table

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("scanning", total=len(examples))
        report = evaluate(examples, detector, lambda: progress.advance(task))
    table = Table(title=f"{file.name}: {len(examples)} rows", title_justify="left")
    for col in (
        "category",
        "rows",
        "attacks",
        "benign",
        "recall",
        "FPR",
        "F1",
        "missed",
        "false +",
    ):
        table.add_column(col, justify="left" if col == "category" else "right")
    rows = [*sorted(report.categories.items()), ("overall", report.overall)]
    for name, counts in rows:
        table.add_row(
            name, str(counts.n), str(counts.tp + counts.fn), str(counts.fp + counts.tn),
            _fmt(counts.recall), _fmt(counts.fpr), _fmt(counts.f1), str(counts.fn), str(counts.fp),
            style="bold" if name == "overall" else None,
        )  # fmt: skip
    console.print(table)
    lat = report.as_dict()["latency_ms"]
    console.print(
        "latency per text (ms): "
        + ", ".join(f"{k} {v:.2f}" for k, v in lat.items())  # type: ignore[attr-defined]
        + "   fired: "
        + (", ".join(f"{k} {v}" for k, v in report.tiers.items()) or "nothing")
    )


def register(cli: typer.Typer) -> None:
    """Add ``opsloop guard ...`` to the CLI."""
    cli.add_typer(app, name="guard")

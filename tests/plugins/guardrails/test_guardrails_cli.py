"""`opsloop guard scan` through the installed console script and entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from guardrails_testdata import DEMO_MESSAGE, DEMO_REDACTED

OPSLOOP = Path(sys.executable).with_name("opsloop")


def run(project: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    project.mkdir(exist_ok=True)
    env = dict(os.environ, OPSLOOP_PLUGINS="guardrails", COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [str(OPSLOOP), "--project", str(project), "guard", "scan", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=120,
    )


def test_demo_message_is_blocked_exit_1_with_a_findings_table(tmp_path: Path) -> None:
    out = run(tmp_path / "p", DEMO_MESSAGE)
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("verdict: BLOCK  (signal sig_")
    assert lines[1] == f"text: {DEMO_REDACTED}"
    for cell in ("pii.email", "pii.card", "ignore_previous_instructions", "reveal_system_prompt"):
        assert cell in out.stdout


def test_file_input_and_json_output(tmp_path: Path) -> None:
    message = tmp_path / "msg.txt"
    message.write_text("[bold]Call me[/bold] at +44 20 7946 0958 or ghp_" + "k" * 36, "utf-8")
    out = run(tmp_path / "p", "--file", str(message), "--target", "output", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["verdict"] == "redact"
    assert report["text"] == "[bold]Call me[/bold] at <PHONE> or <SECRET>"
    assert [f["type"] for f in report["findings"]] == ["secret.github_token", "pii.phone"]
    # no injection scan on output; the built-in markup scanner runs there too
    assert report["scanners"] == {"secrets": "redact", "pii": "redact", "markup": "allow"}
    assert report["signal_id"] is None


def test_stdin_benign_text_is_allowed_and_printed_literally(tmp_path: Path) -> None:
    text = "What are the [bold]instructions[/bold] for this shelf?"  # not rich markup
    out = run(tmp_path / "p", "--file", "-", stdin=text)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["verdict: ALLOW", f"text: {text}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to scan: give the text as an argument or with --file PATH"),
        (
            ("hi", "--file", "x.txt"),
            "give the text to scan as an argument or with --file, not both",
        ),
        (("--file", "missing.txt"), "--file missing.txt: no such file"),
        (("hi", "--target", "prompt"), "unknown scan target 'prompt'; use one of: input"),
    ],
)
def test_bad_input_is_a_one_line_error_exit_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = run(tmp_path / "p", *args)
    assert out.returncode == 2
    assert out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("opsloop: error: ") and message in line

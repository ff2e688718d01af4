"""docs/writing-a-plugin.md, run as a reader would: so the page cannot rot.

The page's code blocks are taken from the Markdown and run in a work folder:

* ``console``: lines starting with ``$ `` are commands, the lines after one its output; a
  block starts in the work folder and ``cd`` moves within the block. Every command must be
  one this test knows how to run (or knows is covered elsewhere), so a new one fails here.
* ``python``: the first line, ``# <path>``, names the file. Under ``opsloop-acme/`` it is a
  file of the package ``opsloop plugins new`` wrote: an excerpt of a written file must be
  in it verbatim, a new file is added. Any other path is a file of the project that
  ``opsloop init shop`` made (the local plugins).
* ``toml``: ``# opsloop.toml`` edits the project's config as a person would (keys set in
  the table they belong to, a new table appended); ``# opsloop-acme/...`` is an excerpt.

Then every example plugin is driven through the core's own code path (scan, drift check,
alert and notification, load and after_load) and checked against the plugin contract.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from opsloop.guard import scan_text
from opsloop.ingest import get_source, run_load
from opsloop.monitor import check_drift
from opsloop.project import Project
from opsloop.records import Signal
from opsloop.respond import evaluate_signal, list_rules
from opsloop.testing import assert_plugin_conforms

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "writing-a-plugin.md"
OPSLOOP = [sys.executable, "-c", "from opsloop.cli import main; main()"]
#: Commands of the page run by another test: installing into a venv is not done in this one.
ELSEWHERE = {
    "pip install -e '.[test]'": "tests/e2e/test_plugin_scaffold.py",
    "pip install --find-links dist opsloop-acme==0.1.0": "tests/e2e/test_plugin_scaffold.py",
}
#: Where the page's shown output has the folder the reader ran the command in.
READER_FOLDER = "/home/you"


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a Markdown text: (language, body)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def edit_toml(config: Path, snippet: str) -> None:
    """Set the snippet's keys in the tables of ``config`` they belong to, keeping the rest
    of the file; a table the file lacks is appended."""
    lines = config.read_text().splitlines()
    table = ""
    for line in snippet.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header = re.fullmatch(r"\[([\w.]+)\]\s*", line)
        if header:
            table = header.group(1)
            if f"[{table}]" not in (x.strip() for x in lines):
                lines += ["", f"[{table}]"]
            continue
        key = line.split("=", 1)[0].strip()
        start = next(i for i, x in enumerate(lines) if x.strip() == f"[{table}]")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), None)
        end = len(lines) if end is None else end
        for i in range(start + 1, end):
            if lines[i].split("=", 1)[0].strip() == key:
                lines[i] = line
                break
        else:
            lines.insert(end if lines[end - 1].strip() else end - 1, line)
    config.write_text("\n".join(lines) + "\n")


class Webhook:
    """A team's webhook on loopback: keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers["content-length"])
                received.append(json.loads(self.rfile.read(size)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/team"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv("TEAM_WEBHOOK_URL", hook.url)
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    yield hook
    hook.stop()


class Reader:
    """Runs the page's commands and files in ``work``; the project is ``work/shop``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.shop = work / "shop"
        self.env = {**os.environ, "COLUMNS": "200"}
        self.pending_edits: list[tuple[str, str]] = []
        self.local_plugins: list[str] = []
        self.excerpts = 0
        self.skipped: list[str] = []

    def run(self, cmd: list[str], cwd: Path, **env: str) -> str:
        out = subprocess.run(
            cmd, cwd=cwd, env={**self.env, **env}, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, f"`{' '.join(cmd)}` in {cwd}:\n{out.stdout}\n{out.stderr}"
        return out.stdout

    # ---------------------------------------------------------------- blocks
    def console(self, body: str) -> None:
        cwd = self.work
        lines = body.splitlines()
        for n, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            command = line[2:].split(" #")[0].strip()
            shown = []
            for later in lines[n + 1 :]:
                if later.startswith("$ "):
                    break
                shown.append(later)
            cwd = self.command(command, cwd, shown)

    def command(self, command: str, cwd: Path, shown: list[str]) -> Path:
        args = shlex.split(command)
        if args[0] == "cd":
            assert (cwd / args[1]).is_dir(), command
            return cwd / args[1]
        if command in ELSEWHERE:
            self.skipped.append(command)
        elif args[:3] == ["opsloop", "plugins", "new"]:
            out = self.run([*OPSLOOP, *args[1:]], cwd)
            expected = [line.replace(READER_FOLDER, str(cwd)) for line in shown]
            assert out.splitlines() == expected, out
        elif args[:2] == ["opsloop", "init"]:
            self.run([*OPSLOOP, *args[1:]], cwd)
            for first, edit in self.pending_edits:
                self.edit_config(first, edit)
        elif args == ["opsloop", "plugins"]:
            self.run([*OPSLOOP, "plugins"], cwd)
            self.all_local_plugins_ok(cwd)
        elif args == ["opsloop", "doctor"]:
            self.run([*OPSLOOP, "doctor"], cwd)
        elif args == ["pytest"]:  # the package is not installed here: the e2e test does that
            pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            self.run([*pytest_cmd, "-k", "not entry_point"], cwd, PYTHONPATH=str(cwd / "src"))
        elif args == ["uv", "build"]:
            from uv import find_uv_bin

            self.run([find_uv_bin(), "build", "-q"], cwd)
            [wheel] = (cwd / "dist").glob("*.whl")
            assert len(list((cwd / "dist").glob("*.tar.gz"))) == 1
            with zipfile.ZipFile(wheel) as archive:
                found = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
                assert "acme = opsloop_acme.plugin" in archive.read(found[0]).decode()
        else:
            pytest.fail(f"the guide runs `{command}`, which this test does not know: teach it")
        return cwd

    def python(self, body: str) -> None:
        first, _, code = body.partition("\n")
        assert first.startswith("# "), f"a python block must name its file: {first!r}"
        path = first[2:].strip()
        if path.startswith("opsloop-acme/"):
            self.file_of_the_package(path, code)
            return
        target = self.shop / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code)
        self.local_plugins.append(target.stem)

    def toml(self, body: str) -> None:
        first, _, snippet = body.partition("\n")
        if first.startswith("# opsloop-acme/"):
            self.file_of_the_package(first[2:].strip(), snippet)
        elif first.startswith("# opsloop.toml"):
            tomllib.loads(snippet)  # the snippet itself is TOML
            if (self.shop / "opsloop.toml").exists():
                self.edit_config(first, snippet)
            else:
                self.pending_edits.append((first, snippet))
        else:
            pytest.fail(f"a toml block must name its file: {first!r}")

    def edit_config(self, first: str, snippet: str) -> None:
        """Edit the project's config; a snippet for a table `opsloop init` already wrote
        must say to edit that table (a second table of a name is invalid TOML)."""
        config = self.shop / "opsloop.toml"
        written = tomllib.loads(config.read_text())
        for table in re.findall(r"^\[(\w+)\]\s*$", snippet, re.MULTILINE):
            if table in written:
                assert f"in the [{table}] table" in first, f"say to edit [{table}]: {first!r}"
        edit_toml(config, snippet)

    def file_of_the_package(self, path: str, text: str) -> None:
        target = self.work / path
        if target.exists():
            assert text in target.read_text(), f"{path} as shown is not what was written"
            self.excerpts += 1
        else:
            target.write_text(text)

    # ---------------------------------------------------------------- checks
    def all_local_plugins_ok(self, cwd: Path) -> None:
        rows = json.loads(self.run([*OPSLOOP, "plugins", "--json"], cwd))["plugins"]
        local = {r["name"]: r for r in rows if r["source"] == "local"}
        assert sorted(local) == sorted(self.local_plugins)
        assert all(r["status"] == "ok" for r in local.values()), local


@pytest.mark.slow  # about 20 processes and a wheel build
def test_the_guide_runs_and_its_examples_work(
    tmp_path: Path, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = Reader(tmp_path)
    for language, body in blocks(GUIDE.read_text()):
        if language in ("console", "python", "toml"):
            getattr(reader, language)(body)
        else:
            assert language == "yaml", f"a {language!r} block: run it or say why not"
    assert reader.excerpts == 3 and sorted(reader.skipped) == sorted(ELSEWHERE)

    # The config a reader ends with: one [plugins] table with both edits, valid settings.
    config = tomllib.loads((reader.shop / "opsloop.toml").read_text())
    assert config["plugins"]["paths"] == ["opsloop_plugins"]
    assert config["plugins"]["order"] == ["card_numbers"]
    monkeypatch.syspath_prepend(str(tmp_path / "opsloop-acme" / "src"))
    from opsloop_acme.settings import Settings  # the package's model, for its table

    assert Settings.model_validate(config["plugin"]["acme"]).verdict == "block"
    sys.modules.pop("opsloop_acme.settings", None)
    sys.modules.pop("opsloop_acme", None)

    # Every example plugin, through the core's own code path.
    exercised = {
        "pager_rules",
        "card_numbers",
        "missing_values",
        "team_webhook",
        "rates",
        "empty_loads",
    }
    assert set(reader.local_plugins) == exercised, "a new example: exercise it here"
    environ = {**os.environ, "OPSLOOP_PLUGINS": ",".join(exercised)}
    project = Project.open(reader.shop, environ=environ)
    try:
        for name in exercised:
            plugin = project.plugins.entries[name].plugin
            assert_plugin_conforms(plugin, tmp_path / name, {"TEAM_WEBHOOK_URL": webhook.url})

        # alert rules and the notifier: a critical drift on 'fraud' pages the team
        assert "fraud-model-drift" in {r.name for r in list_rules(project)}
        signal = Signal(source="doc", type="drift", severity="critical", subject="fraud")
        alerts = evaluate_signal(project, signal)
        assert {a.rule for a in alerts} == {"fraud-model-drift", "model-drift"}
        assert [a.runbook for a in alerts if a.rule == "fraud-model-drift"] == ["drift-triage"]
        assert sorted(body["id"] for body in webhook.received) == sorted(a.id for a in alerts)

        # the scanner, called first as [plugins] order says
        blocked = scan_text(project, "my card is 4111 1111 1111 1111", target="input")
        assert blocked.blocked and [f.type for f in blocked.findings] == ["pii.card_number"]
        assert scan_text(project, "my order is 42", target="output").verdict == "allow"

        # the detector
        reference = pd.DataFrame({"age": [30.0, 41.0] * 50, "income": [1.0, 2.0] * 50})
        current = reference.copy()
        current.loc[::2, "income"] = None
        result, drift = check_drift(project, "fraud", reference, current, detector="missing_values")
        assert [f.feature for f in result.features if f.drifted] == ["income"]
        assert result.drifted and drift is not None and drift.type == "drift"

        # the source, and the after_load hook that turns an empty load into a signal
        landing = reader.shop / "landing"
        landing.mkdir()
        (landing / "rates.csv").write_text("currency,rate\nEUR,1.0\nUSD,1.08\n")
        load = run_load(project, get_source(project, "rates"))
        assert (load.status, load.tables) == ("loaded", {"rates": 2})
        (landing / "rates.csv").write_text("currency,rate\n")
        empty = run_load(project, get_source(project, "rates"))
        assert empty.status == "empty"
        quality = [s for s in project.records.list(Signal) if s.type == "data_quality"]
        assert [(s.subject, s.source) for s in quality] == [("raw.rates", "empty_loads")]
        assert empty.id in quality[0].summary
    finally:
        project.close()


def test_the_toml_editor_edits_in_place(tmp_path: Path) -> None:
    config = tmp_path / "opsloop.toml"
    config.write_text("[plugins]\npaths = []     # folders\norder = []\n\n[monitor]\nx = 1\n")
    edit_toml(config, '[plugins]\npaths = ["p"]\n[plugin.a]\nk = "v"\n')
    assert tomllib.loads(config.read_text()) == {
        "plugins": {"paths": ["p"], "order": []},
        "monitor": {"x": 1},
        "plugin": {"a": {"k": "v"}},
    }


def test_a_second_plugins_table_is_refused_in_one_line(tmp_path: Path) -> None:
    """What the guide's old snippet did to a file `opsloop init` made: every command says so."""
    subprocess.run([*OPSLOOP, "init", "shop"], cwd=tmp_path, check=True, capture_output=True)
    config = tmp_path / "shop" / "opsloop.toml"
    config.write_text(config.read_text() + '\n[plugins]\npaths = ["opsloop_plugins"]\n')
    for command in (["plugins"], ["plugins", "--json"], ["doctor"]):
        out = subprocess.run(
            [*OPSLOOP, *command], cwd=tmp_path / "shop", capture_output=True, text=True
        )
        assert out.returncode != 0 and out.stdout == "", (command, out.stdout)
        [line] = out.stderr.splitlines()
        assert line.startswith(
            f"opsloop: error: {config.resolve()}: not valid TOML: Cannot declare ('plugins',) twice"
        )

"""Secrets against real papermill runs: a fuzz of secret values against every way a
notebook shows them, secrets kept out of the kernel's /proc environ (from the
environment, a file and a terminal prompt), and kernels that leave no processes behind.

One kernel per secret value (it shows the value every way at once), not per combination.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
import select
import string
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from opsloop.cli import main
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import Incident, IncidentUpdate, RunbookRun
from opsloop.redact import REDACTED, active_scrubber

pytestmark = pytest.mark.slow

_RNG = random.Random(10)
_LONG = "".join(
    _RNG.choice(string.ascii_letters + string.digits + "'\"\\ /%&") for _ in range(2500)
)

#: Secret values: quotes, backslashes, newlines, unicode and control characters, URL
#: specials, a long one, a dict and a list. Each holds distinctive text, so a leak found
#: below cannot be a coincidence.
VALUES: dict[str, Any] = {
    "windows": 'C:\\Users\\svc\\p@ss"w0rd',
    "quotes": "it's \"Both\" quote-kinds 'here'",
    "multiline": "first-line-qz81\nsecond line with 'quotes' qz82\n    indented-qz83\r\nlast\\qz84",
    "unicode": "pässwörd-€-😀-密码\ttab\x1b[31mansi-qz91",
    "url": "p@ss/w:rd?&=+% #~qz77",
    "long": _LONG,
    "dict": {
        "user": "svc",
        "password": "dict-pw\"'\\qz55",
        "host": "db-qz56.internal",
        "port": 5439,
    },
    "list": ["first-key-qz61", "second\\key'qz62", "third key\nqz63-line"],
}

#: Ways a notebook shows a value: (label, code using ``s``). A cell each, so that what
#: IPython displays (the last expression) is shown too.
FORMS: list[tuple[str, str]] = [
    ("print", 'print("[print]", s)'),
    ("repr", 'print("[repr]", repr(s))'),
    ("fstring", 'print(f"[fstring] {s!r} and {s}")'),
    ("format", 'print("[format] {} {!r}".format(s, s), "%s %r" % (s, s))'),
    ("stderr", 'print("[stderr]", s, repr(s), file=sys.stderr)'),
    ("logging", 'logging.getLogger("runbook").warning("[logging] %s %r", s, s)'),
    (
        "json",
        'print("[json]", json.dumps(s), json.dumps(s, ensure_ascii=False), '
        'json.dumps({"v": s}, indent=2))',
    ),
    (
        "urlquote",
        'print("[urlquote]", quote(str(s)), quote(str(s), safe=""), quote_plus(str(s)), '
        'urlencode({"p": str(s)}))',
    ),
    ("display", 'print("[display]")\ns'),
    ("display-dict", '{"note": "[display-dict]", "config": s, "n": 1}'),
    ("display-json", 'print("[display-json]")\njson.dumps(s)'),
    ("html", 'display(HTML("<p>[html]</p><pre>" + html.escape(str(s)) + "</pre>"))'),
    (
        "traceback",
        'try:\n    raise ValueError(f"[traceback] bad value {s!r}")\n'
        "except ValueError:\n    traceback.print_exc()",
    ),
    ("exception-repr", 'print("[exception-repr]", repr(KeyError(str(s))), str(KeyError(s)))'),
    (
        "parts",
        "for p in (s.values() if isinstance(s, dict) else s if isinstance(s, list) else [s]):\n"
        '    print("[parts]", p, repr(p), json.dumps(p), quote(str(p)))',
    ),
    ("lines", 'for line in str(s).splitlines():\n    print("[lines]", line, repr(line))'),
    # the last cell fails: its traceback (verbose, with the local variable) goes in the
    # notebook, and its message into the run's error, the audit log, the incident and stderr
    (
        "uncaught",
        "%xmode Verbose\n"
        "def use(secret):\n"
        '    raise RuntimeError(f"[uncaught] vendor refused {secret!r}")\n'
        "use(s)",
    ),
]

_HEAD = (
    "import html, json, logging, sys, traceback\n"
    "from urllib.parse import quote, quote_plus, urlencode\n"
    "from IPython.display import HTML, display\n"
    "s = secret_value"
)


def write_runbook(root: Path, name: str, params: str, *cells: str) -> Path:
    nb = new_notebook()
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, *(new_code_cell(c) for c in cells)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = root / "notebooks" / "runbooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "t"\n')
    monkeypatch.delenv("OPSLOOP_PLUGINS", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path
    from opsloop.cli import context

    project = context._state.get("project")
    if project is not None:
        project.close()  # type: ignore[attr-defined]
    context.set_project_path(None)


# ----------------------------------------------------------------------------- leak finder
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[\\'\"ntr/bf])")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescape(text: str) -> str:
    """Undo one layer of Python or JSON string escapes (surrogate pairs joined)."""

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        return _SIMPLE.get(code, code)

    out = _ESCAPE.sub(one, text)
    return out.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_DECODERS = (
    lambda t: _ANSI.sub("", t),
    html.unescape,
    urllib.parse.unquote_plus,
    urllib.parse.unquote,
    _unescape,
)


def _views(text: str) -> set[str]:
    """``text`` decoded every way a secret could have been encoded, up to three layers."""
    views = {text}
    for _ in range(3):
        views |= {decode(v) for v in views for decode in _DECODERS}
    return views


def _needles(value: Any) -> set[str]:
    """What must not appear: the value, each part and line, and (for long ones) every
    32-character stretch, so a truncated display of the value counts as a leak."""
    if isinstance(value, dict):
        found = {n for v in value.values() for n in _needles(v)}
        return found | {json.dumps(value), str(value)}
    if isinstance(value, list):
        return {n for v in value for n in _needles(v)} | {json.dumps(value), str(value)}
    if not isinstance(value, str):
        # A number in a dict secret (a port) is not secret material on its own, and its
        # digits turn up by chance in a notebook's metadata (durations, timestamps).
        return set()
    text = value
    found = {text} | {ln.strip() for ln in text.splitlines()}
    if len(text) > 64:
        found |= {text[i : i + 32] for i in range(0, len(text) - 32, 16)}
    return {n for n in found if len(n) >= 4}


def leaks(value: Any, places: dict[str, str]) -> list[str]:
    """``place: needle`` for every needle of ``value`` found in any decoding of a place."""
    needles = _needles(value)
    out = []
    for place, text in places.items():
        views = _views(text)
        out += [f"{place}: {n[:40]!r}" for n in needles if any(n in v for v in views)]
    return out


def test_the_leak_finder_finds_encoded_values() -> None:
    """The check below is only as good as this: every form it must catch, caught."""
    for value in VALUES.values():
        for shown in (
            repr(value),
            json.dumps(repr(value)),
            html.escape(json.dumps(value)),
            urllib.parse.quote_plus(str(value)),
            "\x1b[31m" + ascii(value) + "\x1b[0m",
        ):
            assert leaks(value, {"x": shown}), shown
        assert not leaks(value, {"x": f"[print] {REDACTED} and {REDACTED}"})


# ----------------------------------------------------------------------------- the fuzz
def _home_text(root: Path) -> dict[str, str]:
    home = root / ".opsloop"
    return {
        str(p.relative_to(home)): p.read_bytes().decode("utf-8", "replace")
        for p in home.rglob("*")
        if p.is_file()
    }


def test_secret_fuzz_no_form_of_any_value_leaks(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kinds = {"str": "str", "dict": "dict", "list": "list"}
    for kind in kinds:
        write_runbook(
            root,
            f"show-{kind}",
            f"secret_value: {kind} = None\nincident_id: str = ''",
            _HEAD,
            *(code for _, code in FORMS),
        )
    project = Project.open(root, plugins=make_manager())
    incident = Incident(title="leak hunt", severity="warning", subject="fuzz")
    project.emit(incident)
    project.close()

    combinations = 0
    for name, value in VALUES.items():
        kind = "dict" if isinstance(value, dict) else "list" if isinstance(value, list) else "str"
        passed = value if kind == "str" else json.dumps(value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            main(
                ["--project", str(root), "runbook", "run", f"show-{kind}", "--json",
                 "--incident", incident.id, "-P", f"secret_value={passed}"]
            )  # fmt: skip
        out, err = capsys.readouterr()
        assert info.value.code == 1, (name, err)  # the last cell fails on purpose
        run = json.loads(out)
        assert run["status"] == "failed" and run["error"].startswith("RuntimeError: [uncaught]")
        assert run["parameters"]["secret_value"] == REDACTED
        assert "secret parameter 'secret_value' given with -P, which `ps` shows" in err
        # the notebook really showed the value every way, and each showing was scrubbed
        notebook = Path(run["output_path"]).read_text(encoding="utf-8")
        for label, _ in FORMS:
            assert f"[{label}]" in notebook, (name, label)
        assert notebook.count(REDACTED) >= len(FORMS), name
        places = {"stdout": out, "stderr": err, **_home_text(root)}
        assert leaks(value, places) == [], name
        combinations += len(FORMS)

    # the records and the audit log were among the places searched, and hold the runs
    project = Project.open(root, plugins=make_manager())
    runs = project.records.list(RunbookRun)
    assert len(runs) == len(VALUES) and all(r.error and REDACTED in r.error for r in runs)
    # each failed run left a note on the incident naming its error, scrubbed
    notes = [u.note for u in project.records.list(IncidentUpdate) if " failed: " in u.note]
    assert len(notes) == len(VALUES) and all(REDACTED in n for n in notes)
    assert sum(1 for e in project.audit.entries() if e["action"] == "runbook.run") == len(VALUES)
    assert project.audit.verify().ok
    project.close()
    assert not active_scrubber()  # nothing stays registered after the commands
    assert not list(Path("/dev/shm").glob("opsloop-secrets-*"))  # no secrets file left
    assert combinations == len(VALUES) * len(FORMS) == 136
    print(f"secret fuzz: {len(VALUES)} values x {len(FORMS)} forms = {combinations}, 0 leaks")


# ----------------------------------------------------------------------------- /proc environ
def _wait_for(path: Path, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def _read_until(fd: int, marker: bytes, seconds: float = 60) -> bytes:
    seen = b""
    end = time.monotonic() + seconds
    while marker not in seen:
        assert time.monotonic() < end, seen
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_secrets_from_env_file_and_prompt_never_reach_the_kernel_environ(
    root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import hashlib
    import pty

    from_env = "env-secret-" + os.urandom(8).hex()
    from_file = "file-secret-" + os.urandom(8).hex()
    typed = "typed-secret-" + os.urandom(8).hex()
    digest = hashlib.sha256((from_env + from_file + typed).encode()).hexdigest()
    marks = tmp_path_factory.mktemp("marks")
    write_runbook(
        root,
        "login",
        "api_token: str = None\nwarehouse: str = None\npassword: str = None\nexpected: str = ''",
        "import hashlib, os, pathlib, time\n"
        f"marks = pathlib.Path({str(marks)!r})\n"
        "(marks / 'pid').write_text(str(os.getpid()))\n"
        "while not (marks / 'go').exists():\n"
        "    time.sleep(0.05)\n"
        "joined = (api_token + warehouse + password).encode()\n"
        "assert hashlib.sha256(joined).hexdigest() == expected\n"
        "print('secrets arrived')",
    )
    secret_file = root / "warehouse.txt"
    secret_file.write_text(from_file + "\n")
    env = {**os.environ, "VENDOR_TOKEN": from_env}
    master, slave = pty.openpty()

    def controlling_tty() -> None:  # stdin becomes this process's terminal, for getpass
        import fcntl
        import termios

        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    cmd = [
        str(Path(sys.executable).parent / "opsloop"), "--project", str(root),
        "runbook", "run", "login",
        "--secret-env", "api_token=VENDOR_TOKEN", "--secret-file", f"warehouse={secret_file}",
        "-P", f"expected={digest}", "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
        preexec_fn=controlling_tty,  # the child only sets its terminal
    )
    os.close(slave)
    try:
        prompt = _read_until(master, b"not echoed): ")
        assert b"password (secret, not echoed): " in prompt
        os.write(master, typed.encode() + b"\n")
        _wait_for(marks / "pid")
        kernel = int((marks / "pid").read_text())
        environ = Path(f"/proc/{kernel}/environ").read_bytes()
        cmdline = Path(f"/proc/{kernel}/cmdline").read_bytes()
        (marks / "go").write_text("")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.returncode == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded"
    assert run["parameters"] == {
        "api_token": REDACTED,
        "warehouse": REDACTED,
        "password": REDACTED,
        "expected": digest,
    }
    for secret in (from_env, from_file, typed):
        assert secret.encode() not in environ  # read while the kernel ran
        assert secret.encode() not in cmdline
        assert secret not in out and secret not in err
        assert not leaks(secret, _home_text(root))
    assert b"VENDOR_TOKEN=" not in environ  # --secret-env removed it before the kernel
    assert b"OPSLOOP_SECRETS_FILE=" in environ  # a path is all the kernel inherited
    path = re.search(rb"OPSLOOP_SECRETS_FILE=([^\0]*)", environ)
    assert path is not None and not Path(path.group(1).decode()).exists()  # deleted once read
    assert "secrets arrived" in Path(run["output_path"]).read_text()


# ----------------------------------------------------------------------------- orphans
def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _spawner(marks: Path) -> str:
    """A cell that starts two `sleep 300` in the background: one in the kernel's process
    group (Popen) and one in a session of its own (what IPython's `!cmd &` does)."""
    return (
        "import os, subprocess, pathlib\n"
        "a = subprocess.Popen(['sleep', '300'])\n"
        "b = subprocess.Popen(['sleep', '301'], start_new_session=True)\n"
        f"pathlib.Path({str(marks)!r}, 'pids').write_text(f'{{a.pid}} {{b.pid}}')"
    )


@pytest.mark.parametrize(
    ("ending", "error"),
    [
        ("import os\nos._exit(1)", "kernel died while running cell 3"),
        ("import time\ntime.sleep(120)", "cell 3 timed out after 4 s"),
    ],
    ids=["dead-kernel", "timeout"],
)
def test_a_dead_or_timed_out_kernel_leaves_no_process_behind(
    root: Path, tmp_path_factory: pytest.TempPathFactory, ending: str, error: str
) -> None:
    from opsloop.runbooks import run_runbook

    marks = tmp_path_factory.mktemp("marks")
    write_runbook(root, "spawner", "x = 1", _spawner(marks), ending)
    project = Project.open(root, plugins=make_manager())
    try:
        run = run_runbook(project, "spawner", {}, timeout=4)
    finally:
        project.close()
    assert run.status == "failed" and run.error is not None and run.error.startswith(error)
    pids = [int(p) for p in (marks / "pids").read_text().split()]
    deadline = time.monotonic() + 5  # SIGKILL was sent; the kernel of the OS takes a moment
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if _alive(p)] == []

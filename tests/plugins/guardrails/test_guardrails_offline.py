"""No outbound network, ever: guardrails' nltk download and hub telemetry are off.

Each case runs in a fresh interpreter whose socket layer records (and refuses) every
non-loopback DNS lookup or connect, into a file, so attempts made at exit count too. A
control case runs bare guardrails-ai under the same harness and must be caught: it proves
the harness can see exactly the traffic the plugin claims to prevent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from guardrails_testdata import DEMO_MESSAGE, DEMO_REDACTED

# Installed before anything else in the child: refuse and record non-loopback traffic.
NETBLOCK = textwrap.dedent(
    """
    import os, socket, sys
    _LOG = os.environ["NETBLOCK_LOG"]
    _LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}

    def _is_loopback(host):
        host = host.decode() if isinstance(host, bytes) else host
        return host in _LOOPBACK or str(host).startswith("127.")

    def _record(kind, what):
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{kind} {what!r}\\n")

    _getaddrinfo = socket.getaddrinfo
    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            _record("dns", host)
            raise socket.gaierror(socket.EAI_NONAME, "network blocked by test")
        return _getaddrinfo(host, *args, **kwargs)
    socket.getaddrinfo = getaddrinfo

    _connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
    def _check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            _record("connect", address)
            raise OSError("network blocked by test")
    def connect(self, address):
        _check(self, address)
        return _connect(self, address)
    def connect_ex(self, address):
        _check(self, address)
        return _connect_ex(self, address)
    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    """
)

SCAN = textwrap.dedent(
    """
    import json, time
    started = time.perf_counter()
    from opsloop_guardrails import scanners
    imported = time.perf_counter() - started
    import sys
    guardrails_at_import = "guardrails" in sys.modules
    chain = [scanners.injection_scanner(), scanners.secrets_scanner(), scanners.pii_scanner()]
    started = time.perf_counter()
    first = [s.scan(MESSAGE, target="input") for s in chain]
    first_scan = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(50):
        for s in chain:
            s.scan(MESSAGE, target="input")
    warm_ms = (time.perf_counter() - started) / 50 * 1000
    # A plain Guard of the caller's own (metrics default on: no ~/.guardrailsrc) must stay
    # silent too: the way back, an opsloop scanner as a guardrails validator.
    import guardrails
    bridged = guardrails.Guard().use(scanners.scanner_as_validator(chain[2], on_fail="fix"))
    assert bridged.validate(MESSAGE).validated_output == first[2].text
    print(json.dumps({
        "verdicts": [r.verdict for r in first],
        "guardrails_at_import": guardrails_at_import,
        "text": first[2].text,
        "import_s": imported,
        "first_scan_s": first_scan,
        "warm_chain_ms": warm_ms,
        "nltk_imported": "nltk" in sys.modules,
    }))
    """
)

CONTROL = textwrap.dedent(
    """
    import guardrails
    from guardrails.validators import PassResult, Validator, register_validator

    @register_validator(name="control/pass", data_type="string")
    class Pass(Validator):
        def _validate(self, value, metadata):
            return PassResult()

    guardrails.Guard().use(Pass()).validate("hello")
    print("{}")
    """
)


def _start(tmp_path: Path, name: str, body: str) -> tuple[subprocess.Popen[str], Path, Path]:
    home, tmp, log = tmp_path / name / "home", tmp_path / name / "tmp", tmp_path / f"{name}.log"
    home.mkdir(parents=True)
    tmp.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GUARDRAILS_", "OTEL_", "NLTK_", "LANGCHAIN_", "LANGSMITH_"))
    }
    # Shorten only the control's export retries; it changes nothing about whether they happen.
    env |= {"HOME": str(home), "TMPDIR": str(tmp), "NETBLOCK_LOG": str(log)}
    env["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "2"
    code = f"{NETBLOCK}\nMESSAGE = {DEMO_MESSAGE!r}\n{body}"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, home, log


def test_scanning_makes_no_network_call_and_writes_nothing_home(tmp_path: Path) -> None:
    real_home = Path.home()
    before = {p: (real_home / p).exists() for p in ("nltk_data", ".guardrailsrc")}
    # Run the three interpreters side by side: ours cold, ours after nltk was already
    # imported (as evidently does), and bare guardrails as the control.
    runs = {
        "cold": _start(tmp_path, "cold", SCAN),
        "nltk_first": _start(tmp_path, "nltk_first", "import nltk\n" + SCAN),
        "control": _start(tmp_path, "control", CONTROL),
    }
    outputs = {}
    for name, (proc, home, log) in runs.items():
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{name} failed:\n{err[-2000:]}"
        attempts = log.read_text(encoding="utf-8") if log.exists() else ""
        outputs[name] = (json.loads(out.strip().splitlines()[-1]), attempts, home, err)

    for name in ("cold", "nltk_first"):
        report, attempts, home, err = outputs[name]
        assert attempts == "", f"{name}: network attempted:\n{attempts}"
        assert report["verdicts"] == ["block", "allow", "redact"]
        assert report["text"] == DEMO_REDACTED
        assert sorted(p.name for p in home.iterdir()) == [], f"{name} wrote into HOME"
        assert not (home.parent / "tmp" / "guardrails_calls.db").exists()
        assert "nltk_data" not in err and "Error loading punkt" not in err
    assert outputs["cold"][0]["nltk_imported"] is False  # hidden from guardrails' import

    # The control is caught twice: punkt at import, hub telemetry spans at exit.
    _, attempts, _, _ = outputs["control"]
    assert "raw.githubusercontent.com" in attempts
    assert "execute-api.us-east-1.amazonaws.com" in attempts
    after = {p: (real_home / p).exists() for p in ("nltk_data", ".guardrailsrc")}
    assert after == before

    cold = outputs["cold"][0]
    print(
        f"\nscanners import {cold['import_s'] * 1000:.0f} ms, first scan (imports guardrails) "
        f"{cold['first_scan_s']:.2f} s, warm 3-scanner chain {cold['warm_chain_ms']:.2f} ms"
    )
    # Figures are printed, not asserted (no timed assertions in the unit suite); what the
    # import must not do is load guardrails-ai before the first scan.
    assert cold["guardrails_at_import"] is False


def test_entry_module_and_registration_do_not_import_guardrails(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import json, sys, time
        started = time.perf_counter()
        import opsloop_guardrails.plugin as plugin
        entry = time.perf_counter() - started
        from opsloop.testing import make_project
        project = make_project(__import__("pathlib").Path(sys.argv[1]), plugin)
        scanners = plugin.register_scanners(project=project)
        print(json.dumps({
            "entry_s": entry,
            "scanners": [s.name for s in scanners],
            "loaded": sorted(m for m in ("guardrails", "nltk") if m in sys.modules),
        }))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "p")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["scanners"] == ["prompt_injection", "secrets", "pii"]
    assert report["loaded"] == []  # neither guardrails nor nltk until the first scan

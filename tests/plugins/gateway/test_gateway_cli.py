"""``opsloop guard serve`` and ``opsloop guard key`` as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import openai
from gateway_testkit import gateway_config
from opsloop_gateway.keys import hash_key

OPSLOOP = Path(sys.executable).with_name("opsloop")
ENV = {**os.environ, "OPSLOOP_DISABLE_PLUGINS": "guardrails", "BOB_GATEWAY_KEY": "olg-bob-key"}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(OPSLOOP), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=60
    )


def test_key_prints_a_key_once_and_only_its_hash_for_the_settings(tmp_path: Path) -> None:
    out = run("guard", "key", "carol", "--tenant", "acme", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    key = out.stdout.split("): ", 1)[1].split()[0]
    assert key.startswith("olg-") and len(key) > 30
    assert f'sha256 = "{hash_key(key)}"' in out.stdout and 'tenant = "acme"' in out.stdout
    assert out.stdout.count(key) == 1


def test_serve_without_keys_or_project_is_one_line(tmp_path: Path) -> None:
    out = run("guard", "serve", cwd=tmp_path)
    assert out.returncode != 0 and "no opsloop project" in out.stderr
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    out = run("guard", "serve", "--port", "0", cwd=tmp_path)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "no caller keys" in out.stderr


def test_serve_runs_the_gateway_until_interrupted(tmp_path: Path, upstream) -> None:
    (tmp_path / "opsloop.toml").write_text(gateway_config(upstream.url), encoding="utf-8")
    proc = subprocess.Popen(
        [str(OPSLOOP), "guard", "serve", "--port", "0"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("guard gateway on http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[3]
        client = openai.OpenAI(base_url=url, api_key="olg-bob-key", max_retries=0, timeout=30)
        done = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "hi from cli"}]
        )
        assert done.choices[0].message.content == "You said: hi from cli"
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped the guard gateway" in rest
    audit = (tmp_path / ".opsloop" / "audit.jsonl").read_text(encoding="utf-8")
    assert '"gateway.start"' in audit and '"gateway.stop"' in audit
    assert "olg-bob-key" not in audit


def test_doctor_checks_the_keys(tmp_path: Path, upstream) -> None:
    from opsloop_gateway import plugin
    from opsloop_gateway.checks import checks

    from opsloop.testing import make_project

    bare = make_project(tmp_path / "bare", plugin)
    [ok] = checks(bare)
    assert ok.ok and "not set up" in ok.detail
    broken = make_project(tmp_path / "broken", plugin, config=gateway_config(upstream.url))
    [bad] = checks(broken)  # BOB_GATEWAY_KEY is not in this project's environment
    assert not bad.ok and "BOB_GATEWAY_KEY is not set" in bad.detail
    good = make_project(
        tmp_path / "good",
        plugin,
        config=gateway_config(upstream.url),
        environ={"BOB_GATEWAY_KEY": "olg-bob-key"},
    )
    assert checks(good)[0].ok and "2 caller key(s)" in checks(good)[0].detail
    for project in (bare, broken, good):
        project.close()

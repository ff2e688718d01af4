"""Secrets without a kernel: every form of a secret value scrubbed, live secrets reaching
every writer that redacts, secret settings never echoed, and the runbook CLI's secret
options refusing bad input without echoing a value."""

from __future__ import annotations

import html
import json
import urllib.parse
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from pydantic import BaseModel, Field, SecretStr

from opsloop.cli import main
from opsloop.config import secret_fields, validate_settings
from opsloop.errors import ConfigError
from opsloop.redact import (
    REDACTED,
    Scrubber,
    active_scrubber,
    redact,
    redact_text,
    secret_scope,
)

WINDOWS = 'C:\\Users\\svc\\p@ss"w0rd'  # the value from issue 10


def _shows(value: object) -> list[str]:
    """Ways a program prints a value (what the notebook fuzz does with a kernel)."""
    text = str(value)
    return [
        text,
        repr(value),
        f"failed with {value!r}",
        ascii(value),
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        repr(json.dumps(value)),
        json.dumps(repr(value)),
        urllib.parse.quote(text),
        urllib.parse.quote(text, safe=""),
        urllib.parse.quote_plus(text),
        urllib.parse.urlencode({"p": text}),
        html.escape(repr(value)),
        repr({"config": value}),
    ]


@pytest.mark.parametrize(
    "value",
    [
        WINDOWS,
        'it\'s "both" quotes',
        "tab\there\x1b[31m and ünïcödé €😀 密码",
        "first-line-secret\nsecond-line-secret\n  third-indented\r\n",
        "p@ss/w:rd?&=+% #~",
        "x" * 3000 + "'\\\"",
    ],
)
def test_every_form_of_a_string_secret_is_scrubbed(value: str) -> None:
    scrubber = Scrubber([value])
    for shown in _shows(value):
        scrubbed = scrubber.text(shown)
        assert REDACTED in scrubbed, shown
        assert value not in scrubbed
        for line in value.splitlines():
            if len(line.strip()) >= 4:
                assert line.strip() not in scrubbed, (shown, scrubbed)


def test_each_part_of_a_dict_or_list_secret_is_scrubbed() -> None:
    db = {"user": "svc", "password": WINDOWS, "host": "db.internal", "port": 5432}
    keys = ["first-key-a1", "second\\key'b2"]
    scrubber = Scrubber([db, keys])
    assert scrubber.text(f"db={db}") == "db=***"  # the whole dict as printed
    parts = {"login": db["user"], "pw": db["password"], "at": [db["host"], db["port"]]}
    shown = scrubber.text(str(parts))
    assert shown == "{'login': 'svc', 'pw': '***', 'at': ['***', ***]}"
    assert scrubber.text(json.dumps(db)) == REDACTED  # the whole JSON document at once
    assert scrubber.text(f"key {keys[1]!r} refused") == 'key "***" refused'
    assert scrubber.text(json.dumps({"k": keys})) == '{"k": ***}'
    assert "svc" in shown  # parts shorter than 4 characters are left (they mangle text)


def test_short_values_and_plain_text_are_left_alone() -> None:
    scrubber = Scrubber(["abc", None, True, ""])
    assert not scrubber
    assert scrubber.text("abc def") == "abc def"
    assert Scrubber(["hunter22"]).text("the hunter2 2") == "the hunter2 2"


def test_scrubber_walks_json_values() -> None:
    scrubber = Scrubber(["s3cr3t-value"])
    nb = {"cells": [{"outputs": [{"text": ["x s3cr3t-value\n"], "n": 3}]}], "ok": None}
    assert scrubber.value(nb) == {
        "cells": [{"outputs": [{"text": ["x ***\n"], "n": 3}]}],
        "ok": None,
    }


def test_a_secret_scope_reaches_every_writer_that_redacts() -> None:
    value = "live-secret-" + "Z" * 8
    assert redact_text(repr(value)) == repr(value)
    with secret_scope([value]):
        assert redact_text(f"x {value!r}") == "x '***'"
        assert redact({"note": f"saw {json.dumps(value)}"}) == {"note": 'saw "***"'}
        assert active_scrubber().found(value) == [value]
    assert redact_text(value) == value  # the scope ended
    assert not active_scrubber()


# ----------------------------------------------------------------------------- config
class Inner(BaseModel):
    dsn: str = ""
    url: SecretStr | None = None


class Settings(BaseModel):
    admin_token: SecretStr | None = None
    signing: str = Field(default="", json_schema_extra={"secret": True})
    login: SecretStr = SecretStr("")
    inner: Inner = Field(default_factory=Inner)
    name: str = ""


def test_secret_fields_are_found_by_type_marker_and_name() -> None:
    assert secret_fields(Settings) == {"admin_token", "signing", "login", "inner.dsn", "inner.url"}


@pytest.mark.parametrize(
    ("raw", "key", "shown"),
    [
        ({"admin_token": ["hunter2-secret-xyz"]}, "admin_token", "a list"),
        ({"admin_token": {"x": "hunter2-secret-xyz"}}, "admin_token", "a table"),
        ({"signing": ["hunter2-secret-xyz"]}, "signing", "a list"),
        ({"login": 12345678}, "login", "an integer"),
        ({"inner": {"url": ["hunter2-secret-xyz"]}}, "inner.url", "a list"),
    ],
)
def test_a_type_error_never_echoes_a_secret_setting(
    raw: dict[str, object], key: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_settings(Settings, raw, source="opsloop.toml", prefix="plugin.demo")
    message = str(info.value)
    assert message == (
        f"opsloop.toml: 'plugin.demo.{key}' must be a string, got {shown} "
        "(value hidden: secret setting)"
    )
    assert "hunter2" not in message and "12345678" not in message


def test_a_type_error_on_a_plain_setting_still_shows_the_value() -> None:
    with pytest.raises(ConfigError, match=r"'plugin.demo.name' must be a string, got \['x'\]"):
        validate_settings(Settings, {"name": ["x"]}, source="opsloop.toml", prefix="plugin.demo")


# ----------------------------------------------------------------------------- CLI options
@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "t"\n')
    nb = new_notebook()
    cell = new_code_cell("password: str = None  # the vendor password\nwindow: int = 7")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell("print(len(password))")]
    folder = tmp_path / "notebooks" / "runbooks"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "login.ipynb")
    monkeypatch.delenv("OPSLOOP_PLUGINS", raising=False)
    return tmp_path


def _fails(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["--project", str(root), "runbook", "run", "login", *args])
    out, err = capsys.readouterr()
    assert info.value.code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsloop: error: "), err
    return lines[0] + out


def test_cli_secret_options_fail_with_one_line_and_no_value(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert "--param value number 1 is not KEY=VALUE" in _fails(capsys, root, "-P", "hunter2-typed")
    assert "hunter2" not in _fails(capsys, root, "-P", "hunter2-typed")
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    line = _fails(capsys, root, "--secret-env", "password=NO_SUCH_VAR")
    assert "environment variable 'NO_SUCH_VAR' is not set" in line
    line = _fails(capsys, root, "--secret-file", f"password={root / 'missing.txt'}")
    assert "cannot read the file" in line
    line = _fails(capsys, root)  # a required secret, no terminal to ask on
    assert "missing secret parameter 'password'" in line and "--secret-env" in line
    # a secret given as a bad type: the error says so without the value
    (root / "pw.txt").write_text("not-an-int-hunter2\n")
    pw = f"{root / 'pw.txt'}"
    line = _fails(capsys, root, "--secret-file", f"password={pw}", "--secret-file", f"window={pw}")
    assert "parameter 'window' must be int, got a secret str" in line
    assert "hunter2" not in line
    assert not active_scrubber()  # the command's secrets were forgotten when it ended


def test_secret_env_is_removed_from_the_environment(
    root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable is read and removed before anything could start a kernel (this run
    is then refused for an unknown parameter)."""
    import os

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    monkeypatch.setenv("VENDOR_PW", "from-env-hunter2")
    line = _fails(capsys, root, "--secret-env", "password=VENDOR_PW", "-P", "nope=1")
    assert "has no parameter 'nope'" in line
    assert "VENDOR_PW" not in os.environ


def test_the_start_or_end_of_a_long_secret_shown_cut_is_scrubbed() -> None:
    """IPython's verbose traceback shows a long local as ``'head...tail'``."""
    value = "tok-" + "".join(f"{i:03d}" for i in range(40))
    scrubber = Scrubber([value])
    cut = f"use(secret={value[:40]!r}...{value[-30:]!r}) then {value[:20]} and {value[-15:]}"
    assert scrubber.text(cut) == "use(secret='***'...'***') then *** and ***"
    assert scrubber.text(value[:11]) == value[:11]  # shorter than FRAGMENT_LENGTH: left

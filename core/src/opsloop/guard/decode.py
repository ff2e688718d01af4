"""Encoded payloads inside a text (base64, hex, URL-encoding, ROT13), decoded for scanning.

An attacker hides "ignore previous instructions" as ``aWdub3JlIHByZXZpb3Vz...`` and asks the
model to decode it. :func:`decoded_layers` finds such runs, decodes those that turn into
readable text, and decodes again inside what came out, within a depth and a size budget so
that a hostile input cannot make the scan quadratic. Each layer carries the span of the
original text it came from.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import urllib.parse
from dataclasses import dataclass

MAX_DEPTH = 3
MAX_LAYERS = 64
MIN_BUDGET = 256 * 1024  # decoded characters per scan, at least; else the text's own size

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])(?:[A-Za-z0-9+/_-]{4}){4,}[A-Za-z0-9+/_=-]{0,4}")
_HEX = re.compile(
    r"(?<![0-9A-Za-z])(?:0x)?(?=(?:[2-7][0-9a-fA-F][ :]?){3})"
    r"(?:[0-9a-fA-F]{2}[ :]?){8,}(?![0-9A-Za-z])"
    r"|(?:\\x[0-9a-fA-F]{2}){6,}"
)
# A run holding three or more %XX escapes; anchored at a run start so it stays linear.
_URL = re.compile(r"(?<![^\s])[^\s%]*%[0-9A-Fa-f]{2}(?:[^\s%]*%[0-9A-Fa-f]{2}){2,}[^\s%]*")
# Frequent English words: ROT13 is decoded when it makes the text read more like English.
_COMMON = frozenset(
    [
        "the",
        "and",
        "you",
        "your",
        "all",
        "any",
        "to",
        "of",
        "in",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "for",
        "with",
        "not",
        "now",
        "from",
        "as",
        "me",
        "ignore",
        "previous",
        "instructions",
        "instruction",
        "system",
        "prompt",
        "rules",
        "above",
        "print",
        "reveal",
        "tell",
        "what",
        "how",
        "do",
        "must",
        "will",
        "should",
        "secret",
        "password",
        "forget",
        "disregard",
        "new",
    ]
)
ROT13_SAMPLE = 64 * 1024


@dataclass(frozen=True)
class Layer:
    """Text decoded from ``original[start:end]`` (``encoding`` says how, ``depth`` how deep)."""

    text: str
    start: int
    end: int
    encoding: str
    depth: int


def _readable(data: bytes) -> str | None:
    """``data`` as text if it is UTF-8 and mostly printable with some letters, else None."""
    if len(data) < 6:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    letters = sum(1 for c in text if c.isalpha())
    if printable < 0.95 * len(text) or letters < 0.5 * (len(text) - text.count(" ")):
        return None
    if " " not in text and len(text) > 24:
        return None  # one long "word": an identifier or a key, not a sentence
    return text


def _b64(run: str) -> str | None:
    core = run.rstrip("=")
    if len(core) < 16 or core.isdigit() or (core.isalpha() and (core.islower() or core.isupper())):
        return None
    padded = core + "=" * (-len(core) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            text = _readable(decode(padded))
        except (binascii.Error, ValueError):
            continue
        if text is not None:
            return text
    return None


def _hex(run: str) -> str | None:
    digits = re.sub(r"\\x|0x|[ :]", "", run)
    if len(digits) % 2:
        return None
    try:
        return _readable(bytes.fromhex(digits))
    except ValueError:
        return None


def _url(run: str) -> str | None:
    text = urllib.parse.unquote_plus(run)
    return text if text != run and _readable(text.encode("utf-8", "replace")) else None


_COMMON_WORD = re.compile(r"\b(?:" + "|".join(sorted(_COMMON, key=len, reverse=True)) + r")\b")


def _englishness(text: str) -> int:
    return len(_COMMON_WORD.findall(text.lower()))


_SEGMENT = re.compile(r"[^.:;!?\n\"'`()\[\]{}<>]{12,}")


def _rot13_segments(text: str) -> list[tuple[int, int, str]]:
    """Sentences of ``text`` that read more like English after ROT13, decoded."""
    out: list[tuple[int, int, str]] = []
    sample = text[:ROT13_SAMPLE]
    if _englishness(codecs.encode(sample, "rot13")) < 3:
        return out  # nothing reads as English after ROT13: no segment will
    for m in _SEGMENT.finditer(text, 0, len(sample)):
        segment = m.group()
        flipped = codecs.encode(segment, "rot13")
        after = _englishness(flipped)
        if after >= 3 and after > 2 * _englishness(segment):
            out.append((m.start(), m.end(), flipped))
    return out


_FINDERS = (("base64", _BASE64, _b64), ("hex", _HEX, _hex), ("url", _URL, _url))
# Hex written as spaced pairs ("69 67 6e ...") is not one long token: looked for only when
# this hint (printable-ASCII byte pairs, starting with a digit, so rare in prose) matches.
_SPACED_HEX_HINT = re.compile("[2-7][0-9a-fA-F][ :]" * 7 + "[2-7][0-9a-fA-F]")  # unrolled: fast
MIN_RUN = 16


def _candidates(text: str) -> list[tuple[str, int, str]]:
    """(encoding, start, run) of every encoded-looking run; the regular expressions only
    read whitespace-separated tokens of at least MIN_RUN characters, which keeps the
    search fast on prose."""
    out: list[tuple[str, int, str]] = []
    pos = 0
    for token in text.split():
        if len(token) < MIN_RUN:
            continue
        start = text.find(token, pos)
        pos = start + len(token)
        for encoding, pattern, _ in _FINDERS:
            if encoding == "url" and token.count("%") < 3:
                continue
            for m in pattern.finditer(token):
                out.append((encoding, start + m.start(), m.group()))
    if _SPACED_HEX_HINT.search(text):
        for m in _HEX.finditer(text):
            if " " in m.group().strip() or ":" in m.group():
                out.append(("hex", m.start(), m.group()))
    return out


def decoded_layers(text: str, *, max_depth: int = MAX_DEPTH) -> list[Layer]:
    """Every readable payload encoded inside ``text``, and inside those, breadth first."""
    budget = max(MIN_BUDGET, len(text))
    layers: list[Layer] = []
    queue: list[tuple[str, int, int, int]] = [(text, 0, len(text), 0)]
    while queue and len(layers) < MAX_LAYERS:
        current, start, end, depth = queue.pop(0)
        if depth >= max_depth:
            continue
        found: list[Layer] = []
        decoders = {name: decode for name, _, decode in _FINDERS}
        for encoding, at, run in _candidates(current):
            decoded = decoders[encoding](run)
            if decoded is None:
                continue
            # spans of inner layers are the outer layer's span: the original encoded run
            s, e = (at, at + len(run)) if depth == 0 else (start, end)
            found.append(Layer(decoded, s, e, encoding, depth + 1))
        for a, b, flipped in _rot13_segments(current):
            s, e = (a, b) if depth == 0 else (start, end)
            found.append(Layer(flipped, s, e, "rot13", depth + 1))
        for layer in found:
            if budget < len(layer.text) or len(layers) >= MAX_LAYERS:
                break
            budget -= len(layer.text)
            layers.append(layer)
            queue.append((layer.text, layer.start, layer.end, layer.depth))
    return layers

"""Text normalisation, the guard's first step: disguises are undone before anything matches.

Two levels, each keeping, for every output character, the index it came from, so a finding
always points at the original text:

* :func:`normalize` (every detector): NFKC; ASCII/C1 control, zero-width, bidi and
  variation-selector characters dropped; Unicode tag characters decoded ("ASCII smuggling");
  Cyrillic/Greek/Latin look-alikes folded to Latin.
* :func:`canonical` (injection detection): on top of that, HTML entities decoded, combining
  marks and accents removed, inline formatting tags and markdown emphasis removed
  (``Ig<b></b>nore``, ``Ig**no**re``),
  letter-by-letter spacing joined (``I g n o r e``) and leetspeak folded (``1gn0r3``).

Every step is one pass over the text: large inputs stay linear.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

_INVISIBLE = frozenset(
    [
        *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0),
        *range(0x0080, 0x00A0),  # C1 controls
        *range(0x200B, 0x2010),  # zero-width space/joiners, LRM, RLM
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        *range(0x2060, 0x2070),  # word joiner, invisible operators, bidi isolates
        *range(0xFE00, 0xFE10),  # variation selectors
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    ]
)
# ASCII controls other than tab, newline and carriage return: `Ign\x00ore` reads as `Ignore`.
_ASCII_CONTROL = frozenset([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_HAS_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
TAG_RUN = 4  # consecutive tag characters that are decoded as text; shorter runs are dropped
# Look-alikes that NFKC leaves alone: Cyrillic, Greek, IPA and Latin letters drawn like others.
CONFUSABLES: dict[str, str] = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
    "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l", "ɡ": "g",
    "ԍ": "g", "ո": "n", "ս": "u", "ց": "g", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ɑ": "a",
    "ı": "i", "ɩ": "i", "ȷ": "j", "ɪ": "i", "ʏ": "y", "ʀ": "r", "ɴ": "n", "ʜ": "h",
    "ʟ": "l", "ᴍ": "m", "ᴋ": "k", "ᴛ": "t", "ᴏ": "o", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e",
    "ꜱ": "s", "ᴜ": "u", "ᴘ": "p", "ᴀ": "a", "ʙ": "b", "ғ": "f", "ɢ": "g", "ℓ": "l",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D",
    "Ꮪ": "S", "Ꭲ": "T", "Ꭺ": "A", "Ꭼ": "E", "Ꮋ": "H", "Ꮮ": "L", "Ꮇ": "M", "Ꮯ": "C",
    "α": "a", "ο": "o", "ν": "v", "ι": "i", "κ": "k", "ρ": "p", "τ": "t", "υ": "u",
    "ε": "e", "η": "n", "ω": "w", "χ": "x", "γ": "y", "ς": "c",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip
_CONFUSABLE_TABLE = str.maketrans(CONFUSABLES)


@dataclass(frozen=True)
class Normalized:
    """Normalised text plus, for each of its characters, the index it came from."""

    text: str
    origin: list[int] | None  # None: identical to the original (the ASCII fast path)
    hidden: str = ""  # what Unicode tag characters spelled out, if any
    hidden_span: tuple[int, int] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the normalised text back to the original text."""
        if self.origin is None:
            return start, end
        if not self.origin:
            return 0, 0
        if start >= end:
            pos = self.origin[start] if start < len(self.origin) else self.origin[-1] + 1
            return pos, pos
        return self.origin[start], self.origin[end - 1] + 1


def normalize(text: str) -> Normalized:
    """NFKC, drop control and invisible characters, decode tag characters, fold look-alikes."""
    if text.isascii() and not _HAS_ASCII_CONTROL.search(text):
        return Normalized(text, None)
    out: list[str] = []
    origin: list[int] = []
    hidden: list[str] = []
    hidden_first = hidden_last = -1
    run: list[tuple[int, str]] = []  # consecutive tag characters not yet placed

    def flush() -> None:
        nonlocal hidden_first, hidden_last
        # A run spells smuggled text; one or two tag characters inside a word only break it.
        if len(run) >= TAG_RUN:
            for i, c in run:
                hidden.append(c)
                out.append(c)
                origin.append(i)
            hidden_first = run[0][0] if hidden_first < 0 else hidden_first
            hidden_last = run[-1][0]
        run.clear()

    for i, ch in enumerate(text):
        cp = ord(ch)
        if _TAG_FIRST <= cp <= _TAG_LAST:
            # "ASCII smuggling": tag characters are invisible but spell ASCII text.
            inner = cp - _TAG_FIRST
            if 0x20 <= inner < 0x7F:
                run.append((i, chr(inner)))
            continue
        if run:
            flush()
        if cp < 0x80:
            if cp not in _ASCII_CONTROL:
                out.append(ch)
                origin.append(i)
            continue
        if cp in _INVISIBLE:
            continue
        for c in unicodedata.normalize("NFKC", ch).translate(_CONFUSABLE_TABLE):
            out.append(c)
            origin.append(i)
    flush()
    span = (hidden_first, hidden_last + 1) if hidden else None
    return Normalized("".join(out), origin, "".join(hidden), span)


# ---------------------------------------------------------------------------- canonical form
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Inline formatting tags, which split words as well as emphasis does: "Ig<b></b>nore".
_INLINE_TAG = re.compile(
    r"</?(?:b|i|u|em|strong|span|font|s|strike|sup|sub|mark|small|big|code|tt|del|ins)"
    r"(?:\s[^<>]{0,200})?>",
    re.IGNORECASE,
)
# Emphasis markers, inline code ticks and strike-through between two letters ("_" is not
# emphasis inside a word in CommonMark, and snake_case must survive: `im_start`). The
# pattern starts with the marker, so the regex engine skips ahead to markers only.
_EMPHASIS = re.compile(r"\*{1,3}|~~|`")
# Four or more single letters split by one space, dot, dash or underscore: "I g n o r e".
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_]){3,}[^\W\d_](?![^\W\d_])")
_SPACED_HINT = re.compile(r"[ .\-_][^\W\d_][ .\-_][^\W\d_][ .\-_][^\W\d_]")
# A leet character touching a letter ("1gn0r3", "pr3v!0us"); the pattern starts with the
# leet character, so only those positions are tried. "!" and "|" count only between two
# letters or digits ("instructions!" keeps its mark, "<|im_start|>" its bars).
_LEET_HIT = re.compile(r"[0134578@$!|](?:(?<=[A-Za-z].)|(?=[A-Za-z]))")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@$!|")
_LEET_CHARS = frozenset("0134578@$!|")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
     "$": "s", "!": "i", "|": "l"}
)  # fmt: skip


def _rewrite(
    norm: Normalized, pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str]
) -> Normalized:
    """Apply ``pattern``/``repl`` to ``norm.text``; replaced characters map to the match."""
    text = norm.text
    origin = norm.origin if norm.origin is not None else range(len(text))
    out: list[str] = []
    new_origin: list[int] = []
    last = 0
    changed = False
    for m in pattern.finditer(text):
        new = repl(m)
        if new == m.group():
            continue
        changed = True
        out.append(text[last : m.start()])
        new_origin.extend(origin[last : m.start()])
        out.append(new)
        if len(new) == m.end() - m.start():
            new_origin.extend(origin[m.start() : m.end()])
        else:
            anchor = origin[m.start()] if m.start() < len(origin) else 0
            new_origin.extend([anchor] * len(new))
        last = m.end()
    if not changed:
        return norm
    out.append(text[last:])
    new_origin.extend(origin[last:])
    return Normalized("".join(out), new_origin, norm.hidden, norm.hidden_span)


def _strip_marks(norm: Normalized) -> Normalized:
    """Remove combining marks and accents (``Ign\u0301ore``, ``précédentes``)."""
    text = norm.text
    if text.isascii():
        return norm
    origin = norm.origin if norm.origin is not None else range(len(text))
    out: list[str] = []
    new_origin: list[int] = []
    for ch, pos in zip(text, origin, strict=True):
        if ord(ch) < 0xC0:
            out.append(ch)
            new_origin.append(pos)
            continue
        for c in unicodedata.normalize("NFD", ch):
            if not unicodedata.combining(c):
                out.append(c)
                new_origin.append(pos)
    return Normalized("".join(out), new_origin, norm.hidden, norm.hidden_span)


def _emphasis(m: re.Match[str]) -> str:
    text, a, b = m.string, m.start(), m.end()
    inside = a > 0 and b < len(text) and text[a - 1].isalpha() and text[b].isalpha()
    return "" if inside else m.group()


def _token_span(text: str, i: int) -> tuple[int, int]:
    a = i
    while a > 0 and text[a - 1] in _TOKEN_CHARS:
        a -= 1
    b = i + 1
    while b < len(text) and text[b] in _TOKEN_CHARS:
        b += 1
    while a < b and text[a] in "!|":  # "!" and "|" only inside a token
        a += 1
    while b > a and text[b - 1] in "!|":
        b -= 1
    return a, b


def _unleet(norm: Normalized) -> Normalized:
    """Fold leetspeak in tokens that mix letters and leet characters; same length, so the
    origin map is unchanged."""
    text = norm.text
    pieces: list[str] = []
    last = 0
    for m in _LEET_HIT.finditer(text):
        if m.start() < last:
            continue  # inside a token already folded
        a, b = _token_span(text, m.start())
        a = max(a, last)  # never fold a character twice
        if a >= b:
            continue
        token = text[a:b]
        if not any(c.isalpha() for c in token) or _LEET_CHARS.isdisjoint(token):
            continue
        pieces.append(text[last:a])
        pieces.append(token.translate(_LEET))
        last = b
    if not pieces:
        return norm
    pieces.append(text[last:])
    return Normalized("".join(pieces), norm.origin, norm.hidden, norm.hidden_span)


def canonical(text: str | Normalized) -> Normalized:
    """The form injection detection reads: :func:`normalize` plus entities, accents,
    emphasis, spaced letters and leetspeak undone."""
    norm = normalize(text) if isinstance(text, str) else text
    if "&" in norm.text:
        norm = _rewrite(norm, _ENTITY, lambda m: html.unescape(m.group()))
        if any(ord(c) < 0x20 or c in "\u200b\u200d\ufeff" for c in norm.text):
            renorm = normalize(norm.text)  # an entity may spell an invisible character
            norm = _compose(norm, renorm)
    norm = _strip_marks(norm)
    if "<" in norm.text:
        norm = _rewrite(norm, _INLINE_TAG, lambda m: "")
    if "*" in norm.text or "~~" in norm.text or "`" in norm.text:
        norm = _rewrite(norm, _EMPHASIS, _emphasis)
    if _SPACED_HINT.search(norm.text):
        norm = _rewrite(norm, _SPACED, lambda m: m.group()[::2])
    return _unleet(norm)


def _compose(outer: Normalized, inner: Normalized) -> Normalized:
    """``inner`` normalised ``outer.text``: map its characters straight to the original."""
    if inner.origin is None:
        return outer
    if outer.origin is None:
        return inner
    origin = [outer.origin[i] for i in inner.origin]
    return Normalized(inner.text, origin, outer.hidden, outer.hidden_span)

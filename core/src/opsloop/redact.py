"""Keep secrets out of logs, notebooks and the audit log.

Two layers: secrets recognised by their key or shape (:func:`redact`), and the values of
live secrets, such as a runbook's secret parameters, scrubbed in every form a program can
show them (:class:`Scrubber`, :func:`secret_scope`).
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import shlex
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

REDACTED = "***"

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|credential|authorization"
    r"|(^|[_-])auth($|[_-])|bearer|(^|[_-])dsn$)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|xox[abpr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style keys
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----)"
)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?=@)", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    """True when a setting or parameter name says it holds a secret."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """Mask live secrets (see :func:`secret_scope`), known token shapes and passwords
    inside URLs."""
    text = scrub_secrets(text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    return _SECRET_VALUE.sub(REDACTED, text)


def redact(value: Any, secret_keys: frozenset[str] = frozenset()) -> Any:
    """A copy of ``value`` with secret-named keys masked and token-shaped strings masked."""
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if (str(k) in secret_keys or is_secret_key(str(k))) and v not in (None, "")
                else redact(v, secret_keys)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, secret_keys) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# ----------------------------------------------------------------------------- live secrets
#: Secret parts shorter than this are not scrubbed from text (they would mangle any text).
MIN_SCRUB_LENGTH = 4
#: A form of a secret at least twice this long is also scrubbed when only its start or its
#: end is shown (a display cut in the middle: ``'e29bA7...ypC'``), from this many characters.
FRAGMENT_LENGTH = 12


def _py_escape(text: str, quote: str, ascii_only: bool) -> str:
    """``text`` as Python writes it between quotes: ``repr``/``ascii`` without the quotes.

    ``quote`` is the quote character that gets a backslash (repr picks one), "" for none.
    """
    show = ascii if ascii_only else repr
    table: dict[int, str] = {ord(ch): show(ch)[1:-1] for ch in set(text)}
    table[ord("'")] = "\\'" if quote == "'" else "'"
    table[ord('"')] = '\\"' if quote == '"' else '"'
    return text.translate(table)


def _encodings(part: str) -> set[str]:
    """The forms one secret string takes when a program shows it: as is, repr/ascii with
    either quote escaped, JSON, backslash-escaped, URL-encoded, HTML-escaped, shell-quoted."""
    from urllib.parse import quote, quote_plus

    first = {part}
    for q in ("", "'", '"'):
        first.add(_py_escape(part, q, ascii_only=False))
        first.add(_py_escape(part, q, ascii_only=True))
    first.add(json.dumps(part)[1:-1])
    first.add(json.dumps(part, ensure_ascii=False)[1:-1])
    first.add(part.encode("unicode_escape").decode("ascii"))
    first.add(part.replace("\\", "\\\\"))
    first.add(quote(part))
    first.add(quote(part, safe=""))
    first.add(quote_plus(part))
    first.add(quote_plus(part, safe="/"))
    first.add(html.escape(part))
    first.add(html.escape(part, quote=False))
    first.add(shlex.quote(part))
    # one more layer: a repr of JSON text, JSON of a repr, HTML of either
    forms = set(first)
    for form in first:
        for q in ("'", '"'):
            forms.add(_py_escape(form, q, ascii_only=False))
        forms.add(json.dumps(form)[1:-1])
        forms.add(json.dumps(form, ensure_ascii=False)[1:-1])
        forms.add(html.escape(form))
        forms.add(html.escape(form, quote=False))
    return forms


def _parts(value: Any) -> list[str]:
    """Every piece of a secret value that could be shown on its own: the whole value (as
    str, repr and JSON), each element of a list or value of a dict, each line of a
    multi-line string (as written and stripped)."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str):
        lines = value.splitlines()
        extra = [ln for ln in lines if ln != value] + [ln.strip() for ln in lines]
        return [value, *extra]
    if isinstance(value, int | float):
        return [str(value), repr(value)]
    out: list[str] = []
    with contextlib.suppress(TypeError, ValueError):
        out += [json.dumps(value), json.dumps(value, ensure_ascii=False)]
        out += [json.dumps(value, indent=1), json.dumps(value, indent=2)]
    out.append(str(value))
    items = value.values() if isinstance(value, Mapping) else value
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        for item in items:
            out += _parts(item)
    return out


class Scrubber:
    """Replaces every form of some secret values with ``***``.

    Built once from the values (str, numbers, lists and dicts of them): each part of a
    value (see :func:`_parts`) in each way a program can print it (see
    :func:`_encodings`). The longest forms are replaced first; then the start or end of a
    long form, shown cut (a traceback's locals, a truncated log line), from
    :data:`FRAGMENT_LENGTH` characters on.
    """

    def __init__(self, values: Iterable[Any] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            for part in _parts(value):
                if len(part) >= MIN_SCRUB_LENGTH:
                    forms.update(f for f in _encodings(part) if len(f) >= MIN_SCRUB_LENGTH)
        forms.discard(REDACTED)
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=lambda f: (-len(f), f)))

    @property
    def forms(self) -> tuple[str, ...]:
        """Every form scrubbed, longest first."""
        return self._forms

    @forms.setter
    def forms(self, forms: tuple[str, ...]) -> None:
        self._forms = forms
        self._long = tuple(f for f in forms if len(f) >= 2 * FRAGMENT_LENGTH)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        for form in self._long:
            text = _cut_fragments(text, form)
        return text

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, strings) with the secrets scrubbed."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def found(self, text: str) -> list[str]:
        """The forms of a secret that ``text`` contains (for tests and checks)."""
        return [form for form in self.forms if form in text]


def _common_prefix(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` share at their start."""
    size, most = 0, min(len(a), len(b))
    while size < most and a[size] == b[size]:
        size += 1
    return size


def _cut_fragments(text: str, form: str) -> str:
    """``text`` with each run that starts like ``form`` or ends like it (at least
    FRAGMENT_LENGTH characters of it) replaced by ``***``."""
    head, tail = form[:FRAGMENT_LENGTH], form[-FRAGMENT_LENGTH:]
    start = text.find(head)
    while start != -1:
        size = _common_prefix(text[start : start + len(form)], form)
        text = text[:start] + REDACTED + text[start + size :]
        start = text.find(head, start + len(REDACTED))
    end = text.rfind(tail)
    while end != -1:
        stop = end + FRAGMENT_LENGTH
        before = text[max(0, stop - len(form)) : stop]
        size = _common_prefix(before[::-1], form[::-1])
        text = text[: stop - size] + REDACTED + text[stop:]
        end = text.rfind(tail, 0, stop - size)
    return text


_ACTIVE: list[Scrubber] = []
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def secret_scope(values: Iterable[Any]) -> Iterator[Scrubber]:
    """While the block runs, :func:`redact_text` and :func:`redact` (and so the audit log,
    hook traces and every writer that redacts) also scrub every form of ``values``.

    Process-wide, not per thread: a notebook executor may save from another thread.
    """
    scrubber = Scrubber(values)
    with _ACTIVE_LOCK:
        _ACTIVE.append(scrubber)
    try:
        yield scrubber
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.remove(scrubber)


def register_secrets(values: Iterable[Any]) -> Scrubber:
    """Scrub every form of ``values`` until :func:`forget_secrets` (a CLI command that read
    secrets keeps them out of everything it prints and writes, its error line included)."""
    scrubber = Scrubber(values)
    with _ACTIVE_LOCK:
        _ACTIVE.append(scrubber)
    return scrubber


def forget_secrets(scrubber: Scrubber) -> None:
    """Stop scrubbing what :func:`register_secrets` registered."""
    with _ACTIVE_LOCK:
        if scrubber in _ACTIVE:
            _ACTIVE.remove(scrubber)


def scrub_secrets(text: str) -> str:
    """``text`` with every form of every live secret (see :func:`secret_scope`) masked."""
    for scrubber in tuple(_ACTIVE):
        text = scrubber.text(text)
    return text


def active_scrubber() -> Scrubber:
    """One scrubber for every live secret (an empty one when there is none)."""
    merged = Scrubber()
    merged.forms = tuple(
        sorted({f for s in tuple(_ACTIVE) for f in s.forms}, key=lambda f: (-len(f), f))
    )
    return merged

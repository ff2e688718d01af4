"""Every PII entity the guard knows: the rules tier's four plus national ids and IP addresses.

:mod:`opsloop.guard.rules` finds e-mail addresses, payment cards (Luhn), phone numbers and
IBANs (mod-97). This module adds, each with its validity rule:

* ``ssn`` — US Social Security numbers written ``AAA-GG-SSSS`` (or with spaces): area not
  000, 666 or 900–999, group not 00, serial not 0000, and not the well-known advertising
  numbers (078-05-1120, 219-09-9999).
* ``nino`` — UK National Insurance numbers ``QQ 12 34 56 C``: first letter not D F I Q U V,
  second not D F I O Q U V, prefix not BG GB KN NK NT TN ZZ, suffix A–D.
* ``ipv4`` / ``ipv6`` — addresses that :mod:`ipaddress` accepts (``v1.2.3.4`` and
  ``version 1.2.3.4`` are versions, not addresses; ``10:30:00`` is a time; ``a::b``, two
  groups without a digit, is taken for prose).

:func:`find_pii` runs them all with the rules tier's normalisation and overlap rule, and
:func:`redact` writes ``<SSN>``, ``<NINO>``, ``<IP_ADDRESS>`` beside ``<EMAIL>``...
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

from opsloop.guard import rules
from opsloop.guard.normalize import normalize
from opsloop.guard.rules import Match

PII_ENTITIES: tuple[str, ...] = (*rules.PII_ENTITIES, "ssn", "nino", "ipv4", "ipv6")
PLACEHOLDERS: dict[str, str] = {
    **rules.PLACEHOLDERS,
    "pii.ssn": "<SSN>",
    "pii.nino": "<NINO>",
    "pii.ipv4": "<IP_ADDRESS>",
    "pii.ipv6": "<IP_ADDRESS>",
}

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-])")
_SSN_ADVERTISING = {"078051120", "219099999"}
_NINO = re.compile(
    r"(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])"
    r" ?(\d{2}) ?(\d{2}) ?(\d{2}) ?([A-D])(?![A-Za-z0-9])"
)
_NINO_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?:\bv|\bversion\s*|\brelease\s*)$", re.IGNORECASE)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4}|:)"
    r"(?:%[0-9A-Za-z]+)?(?![\w:])"
)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """The SSA's validity rules for a Social Security number's three parts."""
    if area in ("000", "666") or area.startswith("9"):
        return False
    if group == "00" or serial == "0000":
        return False
    return area + group + serial not in _SSN_ADVERTISING


def nino_ok(prefix: str) -> bool:
    """HMRC's rules for a National Insurance number's two-letter prefix."""
    return prefix not in _NINO_BAD_PREFIX


def _ssns(text: str) -> Iterable[Match]:
    for m in _SSN.finditer(text):
        if ssn_ok(m.group(1), m.group(3), m.group(4)):
            yield Match("pii.ssn", m.start(), m.end(), "ssn")


def _ninos(text: str) -> Iterable[Match]:
    for m in _NINO.finditer(text):
        if nino_ok(m.group(1)):
            yield Match("pii.nino", m.start(), m.end(), "nino")


def _ipv4s(text: str) -> Iterable[Match]:
    for m in _IPV4.finditer(text):
        if _VERSION_BEFORE.search(text, max(0, m.start() - 10), m.start()):
            continue
        try:
            ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        yield Match("pii.ipv4", m.start(), m.end(), "ipv4")


def _ipv6s(text: str) -> Iterable[Match]:
    for m in _IPV6.finditer(text):
        raw = m.group()
        groups = [part for part in raw.split(":") if part]
        if len(groups) < 2 or (len(groups) < 3 and not any(c.isdigit() for c in raw)):
            continue  # "::", "a::b" and the like: too little to be an address in prose
        try:
            ipaddress.IPv6Address(raw.split("%")[0])
        except ValueError:
            continue
        yield Match("pii.ipv6", m.start(), m.end(), "ipv6")


_FINDERS = {"ssn": _ssns, "nino": _ninos, "ipv4": _ipv4s, "ipv6": _ipv6s}
# Overlap priority (lower wins): checksummed numbers first, phone shapes last.
_PRIORITY = ("card", "iban", "ssn", "nino", "email", "ipv6", "ipv4", "phone")


def check_entities(entities: Sequence[str]) -> None:
    """Raise ValueError naming unknown PII entity names."""
    unknown = sorted(set(entities) - set(PII_ENTITIES))
    if unknown:
        raise ValueError(f"unknown PII entities {unknown}; use {list(PII_ENTITIES)}")


def find_pii(text: str, entities: Sequence[str] = PII_ENTITIES) -> list[Match]:
    """Every PII match of ``entities`` in ``text``, spans in the original text."""
    check_entities(entities)
    base = [e for e in entities if e in rules.PII_ENTITIES]
    norm = normalize(text)
    found: list[tuple[int, Match]] = []
    for entity in entities:
        if entity in _FINDERS:
            found.extend((_PRIORITY.index(entity), m) for m in _FINDERS[entity](norm.text))
    if base:
        # The rules tier's own finders, on the same normalised text, ranked in one list.
        for m in rules.find_pii(norm.text, base):
            found.append((_PRIORITY.index(m.type.removeprefix("pii.")), m))
    return _resolve(found, norm.span)


def _resolve(
    found: list[tuple[int, Match]], span: Callable[[int, int], tuple[int, int]]
) -> list[Match]:
    found.sort(key=lambda pm: (pm[1].start, pm[0], -(pm[1].end - pm[1].start)))
    kept: list[Match] = []
    end = -1
    for _, m in found:
        if m.start >= end:
            kept.append(m)
            end = m.end
    out = []
    for m in kept:
        start, stop = span(m.start, m.end)
        out.append(Match(m.type, start, stop, m.rule))
    return out


def placeholder(finding_type: str) -> str:
    """The text a PII or secret finding is redacted to (``<EMAIL>``, ``<SECRET>``...)."""
    if finding_type.startswith("secret."):
        return rules.SECRET_PLACEHOLDER
    return PLACEHOLDERS.get(finding_type, "<REDACTED>")


def redact(text: str, matches: Iterable[Match]) -> str:
    """Replace each match with its placeholder."""
    out = text
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        out = out[: m.start] + placeholder(m.type) + out[m.end :]
    return out


def find_sensitive(text: str, entities: Sequence[str] = PII_ENTITIES) -> list[Match]:
    """PII and secrets together, non-overlapping (a secret wins), in original coordinates."""
    secrets = rules.find_secrets(text)
    pii = [m for m in find_pii(text, entities) if not any(_overlap(m, s) for s in secrets)]
    return sorted([*secrets, *pii], key=lambda m: m.start)


def _overlap(a: Match, b: Match) -> bool:
    return a.start < b.end and b.start < a.end

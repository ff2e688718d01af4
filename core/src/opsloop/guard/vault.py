"""Reversible pseudonymisation for one request: PII out as ``<EMAIL_1>``, back in the answer.

A :class:`Vault` lives as long as one request: :meth:`Vault.pseudonymize` swaps each PII
value for a numbered placeholder (the same value gets the same placeholder), the model
sees only placeholders, and :meth:`Vault.reveal` puts the values back into its completion
for the caller. The vault is never stored, logged or pickled: its ``repr`` shows counts
only, and it refuses to be copied into a record.

Secrets are not pseudonymised: they are redacted as ``<SECRET>`` and never come back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NoReturn

from opsloop.guard import pii
from opsloop.guard.rules import Match

_TOKEN = re.compile(r"<([A-Z][A-Z_]*?)_(\d+)>")
_PARTIAL = re.compile(r"<[A-Z_0-9]{0,24}$")


class Vault:
    """Placeholders of one request and the values they stand for (in memory only)."""

    def __init__(self, entities: Sequence[str] = pii.PII_ENTITIES) -> None:
        pii.check_entities(entities)
        self.entities = tuple(entities)
        self._token_of: dict[tuple[str, str], str] = {}
        self._value_of: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Vault({len(self._value_of)} placeholders)"

    def __len__(self) -> int:
        return len(self._value_of)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Vault holds PII for one request and cannot be pickled or stored")

    def token(self, finding_type: str, value: str) -> str:
        """The placeholder for ``value`` (``<EMAIL_1>``...), made on first sight."""
        kind = pii.placeholder(finding_type).strip("<>")
        key = (kind, value)
        if key not in self._token_of:
            n = self._counts.get(kind, 0) + 1
            self._counts[kind] = n
            token = f"<{kind}_{n}>"
            self._token_of[key] = token
            self._value_of[token] = value
        return self._token_of[key]

    def pseudonymize(self, text: str, matches: Iterable[Match] | None = None) -> str:
        """``text`` with PII swapped for placeholders and secrets redacted as ``<SECRET>``.

        ``matches`` defaults to :func:`opsloop.guard.pii.find_sensitive` over ``text``.
        """
        found = pii.find_sensitive(text, self.entities) if matches is None else list(matches)
        out = text
        for m in sorted(found, key=lambda m: m.start, reverse=True):
            if m.type.startswith("secret."):
                repl = pii.placeholder(m.type)
            else:
                repl = self.token(m.type, text[m.start : m.end])
            out = out[: m.start] + repl + out[m.end :]
        return out

    def reveal(self, text: str) -> str:
        """``text`` with every placeholder of this vault replaced by its value."""
        if not self._value_of or "<" not in text:
            return text
        return _TOKEN.sub(lambda m: self._value_of.get(m.group(), m.group()), text)

    def revealer(self) -> Reveal:
        """A streaming :meth:`reveal` that holds back a placeholder cut between deltas."""
        return Reveal(self)

    def clear(self) -> None:
        """Forget every value (at the end of the request)."""
        self._token_of.clear()
        self._value_of.clear()
        self._counts.clear()


class Reveal:
    """Reveal placeholders in a stream of pieces; ``<EMA`` waits for the rest."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.pending = ""

    def feed(self, piece: str) -> str:
        text = self.pending + piece
        tail = _PARTIAL.search(text)
        if tail is not None:
            self.pending, text = text[tail.start() :], text[: tail.start()]
        else:
            self.pending = ""
        return self.vault.reveal(text)

    def finish(self) -> str:
        rest, self.pending = self.pending, ""
        return self.vault.reveal(rest)

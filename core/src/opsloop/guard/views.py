"""The texts injection detection reads: the canonical form, and each decoded payload's."""

from __future__ import annotations

from dataclasses import dataclass

from opsloop.guard.decode import decoded_layers
from opsloop.guard.normalize import Normalized, canonical, normalize


@dataclass(frozen=True)
class View:
    """One text to scan: the input's canonical form, or a payload decoded from it."""

    norm: Normalized  # canonical form of this layer's text
    encoding: str = ""  # "" for the input itself, else "base64", "hex", "url", "rot13"
    fixed_span: tuple[int, int] | None = None  # a decoded layer: the encoded run it came from
    depth: int = 0

    def span(self, start: int, end: int) -> tuple[int, int]:
        """A span of this view as a span of the original text."""
        return self.norm.span(start, end) if self.fixed_span is None else self.fixed_span

    def label(self, what: str) -> str:
        """``what``, saying which decoded layer it was found in."""
        if not self.encoding:
            return what
        return f"{what} (in {self.encoding}{'' if self.depth == 1 else f', depth {self.depth}'})"


def views(text: str, *, decode: bool = True) -> list[View]:
    """The canonical form of ``text`` and of every payload decoded from it."""
    unicode_norm = normalize(text)
    out = [View(canonical(unicode_norm))]
    if decode:
        # Payloads are looked for in the Unicode-normalised text, not in the canonical one:
        # folding leetspeak digits would break base64 and hex.
        for layer in decoded_layers(unicode_norm.text):
            span = unicode_norm.span(layer.start, layer.end)
            out.append(View(canonical(layer.text), layer.encoding, span, layer.depth))
    return out

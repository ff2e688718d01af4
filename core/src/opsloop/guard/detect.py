"""Prompt-injection detection: the rules tier and the learned tier over the same views.

Each view (the canonical text, and every payload decoded from it) goes through the rules;
the model scores the views too, and adds a finding when no rule fired, so a finding always
says which tier fired and why: the rule id, or the model's score and top n-grams.

A rule match that only *quotes* an attack while the text talks about attacks (a support
ticket reporting one, a security article) is a non-blocking ``prompt_injection.mention``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from opsloop.guard.model import InjectionModel, shipped_model
from opsloop.guard.rules import PI, Match, find_injection
from opsloop.guard.views import View, views

MENTION = "prompt_injection.mention"
_QUOTED = re.compile(
    r"\"[^\"\n]{3,600}\"|“[^”\n]{3,600}”|«[^»\n]{3,600}»|'[^'\n]{3,600}'|`[^`\n]{3,600}`"
)
# Words of someone writing *about* an attack: reports, tickets, articles, courses.
_META = re.compile(
    r"\b(?:prompt[- ]injections?|injection attacks?|jailbreak(?:s|ing)?|attacks?|attackers?"
    r"|red[- ]team\w*|security|incidents?|tickets?|bug reports?|reported|flagged|blocked"
    r"|filter\w*|false positives?|detect\w*|defen[cs]e\w*|mitigat\w*|researchers?|articles?"
    r"|lectures?|training|slides?|examples?|owasp|logs?|customers?|testers?|support|strings?"
    r"|phrases?|payloads?|variants?|quoted?|pasting|pasted|typed|refused?"
    r"|users? (?:wrote|typed|sent|entered|said))\b",
    re.IGNORECASE,
)


def _mention_spans(text: str) -> list[tuple[int, int]]:
    """Quoted spans of ``text`` when the text around the quotes talks about attacks."""
    quotes = [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
    if not quotes:
        return []
    outside = []
    last = 0
    for a, b in quotes:
        outside.append(text[last:a])
        last = b
    outside.append(text[last:])
    cues = {m.group().lower() for m in _META.finditer(" ".join(outside))}
    return quotes if len(cues) >= 2 else []


def _inside(match: Match, spans: Sequence[tuple[int, int]]) -> bool:
    return any(a <= match.start and match.end <= b for a, b in spans)


def _masked(text: str, mentions: Sequence[Match], spans: Sequence[tuple[int, int]]) -> str:
    """``text`` with the inside of every quoted span that holds a mention removed (the
    quotation marks stay): the model judges the words around a quoted attack, not the
    attack the rules already recognised as quoted."""
    out = text
    for a, b in sorted(spans, reverse=True):
        if any(a <= m.start and m.end <= b for m in mentions):
            out = out[: a + 1] + out[b - 1 :]
    return out


def model_text(
    text: str, target: str = "input", extra: Sequence[re.Pattern[str]] = ()
) -> tuple[str, bool]:
    """The text the model scores for ``text`` (quoted mentions cut out) and whether a rule
    blocks it anyway — as :func:`detect_injection` does, for training to fit and calibrate
    on the same input."""
    found = find_injection(text, target, extra)
    spans = _mention_spans(text) if found else []
    if any(m.type == PI and not _inside(m, spans) for m in found):
        return text, True
    mentions = [m for m in found if _inside(m, spans)]
    return (_masked(text, mentions, spans) if mentions else text), False


def detect_injection(
    text: str,
    target: str = "input",
    extra: Sequence[re.Pattern[str]] = (),
    *,
    model: InjectionModel | None = None,
    use_model: bool = True,
    threshold: float | None = None,
    explain: int = 5,
) -> list[Match]:
    """Every injection finding in ``text``: rule matches, then the model's if no rule fired.

    ``model`` defaults to the shipped one; ``threshold`` to the model's own (one for texts of
    one window, one for longer texts, :meth:`InjectionModel.threshold_for`). Matches of type
    :data:`MENTION` do not block.
    """
    scan_views: list[View] = views(text)
    found = find_injection(text, target, extra, scan_views=scan_views)
    spans = _mention_spans(text) if found else []
    out = [
        Match(MENTION, m.start, m.end, m.rule, m.tier, m.score)
        if m.type == PI and _inside(m, spans)
        else m
        for m in found
    ]
    if use_model and not any(m.type == PI for m in out):
        mentions = [m for m in out if m.type == MENTION]
        if mentions:  # score the text around the quoted attack, not the quote
            scan_views = views(_masked(text, mentions, spans))
        chosen = model if model is not None else shipped_model()
        best: tuple[float, View, int, int, str] | None = None
        for view in scan_views:
            result = chosen.score(view.norm.text, explain=0)
            limit = chosen.threshold_for(len(view.norm.text)) if threshold is None else threshold
            if result.score >= limit and (best is None or result.score > best[0]):
                best = (result.score, view, result.start, result.end, "")
        if best is not None:
            score, view, a, b, _ = best
            why = chosen.score(view.norm.text[a:b], explain=explain) if explain else None
            detail = view.label(why.explain() if why else f"model {score:.2f}")
            start, end = view.span(a, b) if b > a else (0, 0)
            if mentions:  # the scored text had the quotes cut out: point at all of it
                start, end = 0, len(text)
            out.append(Match(PI, start, end, detail, "model", round(score, 4)))
    out.sort(key=lambda m: m.start)
    return out


def is_attack(matches: Sequence[Match]) -> bool:
    """Whether any match blocks (a quoted mention does not)."""
    return any(m.type == PI for m in matches)

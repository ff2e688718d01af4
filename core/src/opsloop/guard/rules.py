"""The rules tier: curated regular expressions for PII, secrets and prompt injection.

No model, no network, no vendor import: every detector is a regular expression plus a
checksum where one exists (Luhn for cards, ISO 7064 mod-97 for IBANs). Text is normalised
first (:mod:`opsloop.guard.normalize`), injection rules also read every encoded payload
found inside the text (:mod:`opsloop.guard.decode`), and every span is mapped back to the
original text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opsloop.guard.normalize import CONFUSABLES, Normalized, normalize
from opsloop.guard.views import View, views

PII_ENTITIES: tuple[str, ...] = ("email", "card", "phone", "iban")
TARGETS: tuple[str, ...] = ("input", "retrieved", "tool_output", "output")
PLACEHOLDERS: dict[str, str] = {
    "pii.email": "<EMAIL>",
    "pii.card": "<CARD>",
    "pii.phone": "<PHONE>",
    "pii.iban": "<IBAN>",
}
SECRET_PLACEHOLDER = "<SECRET>"


@dataclass(frozen=True)
class Match:
    """One detection: its finding type, its span in the scanned text, and why it fired.

    ``rule`` is the rule id (rules tier) or the model's explanation (model tier).
    """

    type: str
    start: int
    end: int
    rule: str = ""
    tier: str = "rules"
    score: float = 1.0


def redact(text: str, matches: Iterable[Match]) -> str:
    """Replace each match with its placeholder (``<EMAIL>``, ``<SECRET>``...)."""
    out = text
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        out = out[: m.start] + placeholder(m.type) + out[m.end :]
    return out


def placeholder(finding_type: str) -> str:
    """The text a finding of this type is redacted to."""
    if finding_type.startswith("secret."):
        return SECRET_PLACEHOLDER
    return PLACEHOLDERS.get(finding_type, "<REDACTED>")


def _resolve(found: list[tuple[int, Match]], norm: Normalized) -> list[Match]:
    """Keep non-overlapping matches (earlier start, then higher priority, then longer) and
    map them back to the original text."""
    found.sort(key=lambda pm: (pm[1].start, pm[0], -(pm[1].end - pm[1].start)))
    kept: list[Match] = []
    end = -1
    for _, m in found:
        if m.start >= end:
            kept.append(m)
            end = m.end
    out = []
    for m in kept:
        start, stop = norm.span(m.start, m.end)
        out.append(Match(m.type, start, stop, m.rule))
    return out


# ---------------------------------------------------------------------------- PII
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?!\d)")
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}"
    r"(?:[ .-]\d{1,5}){1,5}(?![\w])"
    r"|(?<![\w+])\+\d{7,15}(?!\w)"
)
_NANP = re.compile(r"^(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}$")
_IPV4ISH = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})(\d{2})(?= ?[A-Z0-9])")
# ISO 13616 IBAN lengths per country.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 7064 mod-97 check of a compact IBAN (country, check digits, account)."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _cards(text: str) -> Iterable[Match]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if (
            13 <= len(digits) <= 19
            and digits[0] in "23456"  # Mastercard 2/5, Amex/Diners 3, Visa 4, Discover 6
            and len(set(digits)) > 1
            and luhn_ok(digits)
        ):
            yield Match("pii.card", m.start(), m.end(), "luhn")


def _phones(text: str) -> Iterable[Match]:
    for m in _PHONE.finditer(text):
        raw = m.group()
        digits = sum(c.isdigit() for c in raw)
        if not 9 <= digits <= 15 or _IPV4ISH.match(raw):
            continue
        plausible = (
            raw.startswith(("+", "("))
            or _NANP.match(raw) is not None
            or (raw.startswith("0") and re.search(r"[ .-]", raw) is not None)
        )
        if plausible:
            yield Match("pii.phone", m.start(), m.end(), "phone")


def _ibans(text: str) -> Iterable[Match]:
    for m in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        chars = [m.group(1), m.group(2)]
        pos, need = m.end(), length - 4
        while need and pos < len(text):
            ch = text[pos]
            if ch == " " and pos + 1 < len(text) and text[pos + 1] != " ":
                pos += 1
                continue
            if not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
                break
            chars.append(ch)
            need -= 1
            pos += 1
        if need or (pos < len(text) and text[pos].isalnum()):
            continue
        if iban_ok("".join(chars)):
            yield Match("pii.iban", m.start(), pos, "mod97")


def _emails(text: str) -> Iterable[Match]:
    for m in _EMAIL.finditer(text):
        yield Match("pii.email", m.start(), m.end(), "email")


_PII_FINDERS = {"card": _cards, "iban": _ibans, "email": _emails, "phone": _phones}


def find_pii(text: str, entities: Sequence[str] = PII_ENTITIES) -> list[Match]:
    """E-mail addresses, payment cards (Luhn), phone numbers and IBANs (mod-97) in ``text``."""
    norm = normalize(text)
    found: list[tuple[int, Match]] = []
    # Priority on overlap: a checksummed card or IBAN wins over a phone-shaped run of digits.
    for priority, entity in enumerate(("card", "iban", "email", "phone")):
        if entity in entities:
            found.extend((priority, m) for m in _PII_FINDERS[entity](norm.text))
    return _resolve(found, norm)


# ---------------------------------------------------------------------------- secrets
# (finding type, rule, pattern); a pattern with a group redacts only the group.
SECRET_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (t, r, re.compile(p))
    for t, r, p in (
        (
            "secret.private_key",
            "pem_private_key",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        ),
        (
            "secret.aws_key",
            "aws_access_key_id",
            r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}(?![A-Z0-9])",
        ),
        (
            "secret.aws_key",
            "aws_secret_access_key",
            r"(?i:aws_?secret_?access_?key|aws_?secret)[\"']?\s*[=:]\s*[\"']?"
            r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        ),
        (
            "secret.github_token",
            "github_token",
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        ),
        ("secret.slack_token", "slack_token", r"(?<![\w-])xox[abposr]-[A-Za-z0-9-]{10,250}"),
        (
            "secret.slack_webhook",
            "slack_webhook",
            r"https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
        ),
        ("secret.anthropic_key", "anthropic_key", r"(?<![\w-])sk-ant-[A-Za-z0-9_-]{20,}"),
        (
            "secret.openai_key",
            "openai_key",
            r"(?<![\w-])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
        ),
        ("secret.stripe_key", "stripe_key", r"(?<![\w-])[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
        ("secret.google_api_key", "google_api_key", r"(?<![\w-])AIza[0-9A-Za-z_-]{35}"),
        (
            "secret.jwt",
            "jwt",
            r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
        ),
    )
)


def find_secrets(text: str) -> list[Match]:
    """API keys, tokens and private key blocks in ``text``."""
    norm = normalize(text)
    found: list[tuple[int, Match]] = []
    for priority, (kind, rule, pattern) in enumerate(SECRET_RULES):
        for m in pattern.finditer(norm.text):
            start, end = (m.start(1), m.end(1)) if pattern.groups else (m.start(), m.end())
            found.append((priority, Match(kind, start, end, rule)))
    return _resolve(found, norm)


# ---------------------------------------------------------------------------- injection
PI = "prompt_injection"
_ALL = TARGETS
_THIRD_PARTY = ("retrieved", "tool_output")
_NOT_NEGATED = r"(?<!n't )(?<!not )(?<!never )(?<!n’t )"
_OVERRIDE_VERB = (
    r"(?:ignore|disregard|forget|skip|override|bypass|abandon|neglect|discard|drop"
    r"|(?:stop|quit|cease)\s+(?:following|obeying)|(?:do\s+not|don't|no\s+longer)\s+(?:follow|obey))"
)
_FILLER = r"(?:all|any|every|each|the|of|your|these|those|that|this|its|such)"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|foregoing|former|initial|original|old)"
_ORDERS = (
    r"(?:instructions?|prompts?|rules|directions|directives|guidelines|guidance|context"
    r"|messages?|commands?|orders|constraints|programming|policies|restrictions|requests"
    r"|directions|setup|configuration|tasks?)"
)
_REVEAL_VERB = (
    r"(?:reveal|print|show|display|repeat|output|leak|dump|expose|recite|echo|share|paste"
    r"|tell\s+me|give\s+me|send\s+me|write\s+out|spell\s+out|read\s+back|disclose|return)"
)
_REVEAL_FILLER = (
    r"(?:the|your|its|this|that|entire|full|whole|complete|exact|verbatim|current|me|us|all"
    r"|of|above|initial|original|hidden|secret|internal)"
)
_SECRET_PROMPT = (
    r"(?:system|developer|hidden|secret|initial|original|internal|pre-?)\s*"
    r"(?:prompt|instructions?|message|rules|guidelines)"
)
_AI = r"(?:AI|A\.I\.|assistant|chatbot|bot|LLM|language\s+model|GPT|agent|model)"
_LIMITS = (
    r"(?:restrictions|filters?|limitations|limits|rules|guidelines|censorship|ethic\w*|morals?"
    r"|safety(?:\s+\w+)?|content\s+polic\w+|policies|boundaries|guardrails)"
)


def _folded(pattern: str) -> str:
    """A pattern as the canonical text spells it: look-alikes folded, accents stripped."""
    decomposed = unicodedata.normalize("NFD", pattern.translate(_FOLD))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_FOLD = str.maketrans(CONFUSABLES)

# (rule, targets, pattern) — checked, case-insensitively, on the normalised text.
INJECTION_RULES: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = tuple(
    (name, targets, re.compile(pattern, re.IGNORECASE | re.MULTILINE))
    for name, targets, pattern in (
        (
            "ignore_previous_instructions",
            _ALL,
            rf"\b{_NOT_NEGATED}{_OVERRIDE_VERB}\s+(?:{_FILLER}\s+){{0,3}}{_EARLIER}\s+"
            rf"(?:\w+\s+)?{_ORDERS}\b",
        ),
        (
            "ignore_everything_above",
            _ALL,
            rf"\b{_NOT_NEGATED}{_OVERRIDE_VERB}\s+(?:everything|anything|all)\s+"
            r"(?:(?:you(?:'ve|\s+have)?\s+)?(?:been\s+)?(?:told|said|written|given)\s+)?"
            r"(?:above|before|prior|so\s+far|until\s+now|up\s+to\s+now)\b",
        ),
        (
            "disregard_system_prompt",
            _ALL,
            rf"\b{_NOT_NEGATED}(?:{_OVERRIDE_VERB}|delete|erase|remove|turn\s+off|disable)\s+"
            r"(?:(?:your|the|all|any|of|its|previous|current|original|initial|own)\s+){0,3}"
            r"(?:system|developer|safety|content)\s*(?:prompt|message|instructions?|rules"
            r"|guidelines|polic(?:y|ies)|filters?)\b",
        ),
        (
            "reveal_system_prompt",
            _ALL,
            rf"\b{_REVEAL_VERB}\s+(?:{_REVEAL_FILLER}\s+){{0,4}}{_SECRET_PROMPT}\b"
            rf"|\bwhat\s+(?:is|are|was|were)\s+your\s+(?:{_REVEAL_FILLER}\s+){{0,2}}"
            r"(?:system\s+prompt|(?:initial|original|hidden|secret)\s+(?:prompt|instructions))\b",
        ),
        (
            "repeat_text_above",
            _ALL,
            r"\b(?:repeat|recite|print|output|dump|reveal|leak|write)\s+(?:\w+\s+){0,3}?"
            r"(?:words|text|tokens|lines|everything|all)\s+(?:above|before\s+this)\b",
        ),
        (
            "dan_jailbreak",
            _ALL,
            r"\byou\s+are\s+(?:now\s+)?(?:going\s+to\s+(?:be|act\s+as|pretend\s+to\s+be)\s+)?"
            r"(?-i:DAN)\b|\b(?-i:DAN)\s+mode\b|\bact\s+as\s+(?-i:DAN)\b|\bdo\s+anything\s+now\b",
        ),
        (
            "jailbreak_mode",
            _ALL,
            r"\b(?:developer|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil)"
            r"\s+mode\b(?:\s+(?:is\s+)?(?:enabled|activated|on))?"
            rf"|\b(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unaligned)\s+{_AI}\b",
        ),
        (
            "roleplay_without_limits",
            _ALL,
            r"\b(?:pretend|imagine|act|behave|roleplay|role-play|play\s+the\s+role|from\s+now\s+on)"
            rf"\b[^.!?\n]{{0,80}}?\b(?:no|without|free\s+(?:of|from)|ignor\w*|bypass\w*)\s+"
            rf"(?:any\s+|all\s+|your\s+|the\s+|its\s+)?{_LIMITS}\b",
        ),
        (
            "no_restrictions_claim",
            _ALL,
            r"\byou\s+(?:have\s+no|are\s+free\s+(?:of|from)|are\s+(?:not|no\s+longer)\s+"
            r"(?:bound|restricted|limited)\s+by)\s+(?:any\s+)?(?:\w+\s+)?"
            r"(?:restrictions|rules|limits|limitations|filters|guidelines|policies)\b",
        ),
        (
            "chat_template_tokens",
            _ALL,
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id"
            r"|end_header_id)\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>",
        ),
        (
            "html_comment_instruction",
            ("input", "retrieved", "tool_output"),
            r"<!--(?:(?!-->)[\s\S]){0,2000}?\b(?:ignore|disregard|you\s+must|assistant|AI|LLM"
            r"|system\s+prompt|do\s+not\s+(?:tell|mention|reveal|show)|new\s+instructions?)\b"
            r"(?:(?!-->)[\s\S]){0,2000}?-->",
        ),
        (
            "role_marker",
            _THIRD_PARTY,
            r"^[ \t>*#-]*(?:assistant|system|human)\s*:\s*\S",
        ),
        (
            "addressed_to_ai",
            _THIRD_PARTY,
            rf"\bif\s+you\s+are\s+(?:an?\s+)?(?:{_AI}|large\s+language\s+model)\b"
            rf"|\b{_AI}s?\s+(?:reading|processing|summari[sz]ing|parsing)\s+this\b"
            rf"|\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+)?{_AI}\s*:",
        ),
        (
            "ignore_previous_instructions_i18n",
            _ALL,
            _folded(
                # de, fr, es, it, pt, nl, ru (accents are stripped before matching)
                r"\b(?:ignorier\w*|vergiss|missacht\w*)\s+(?:\w+\s+){0,3}(?:vorherig|bisherig"
                r"|obig|vorig|fruher)\w*\s+(?:anweisung|instruktion|befehl|regel|vorgabe)\w*"
                r"|\b(?:ignore\w*|oublie\w*)\s+(?:\w+\s+){0,3}(?:instructions?|consignes?|regles?)"
                r"\s+(?:precedente|anterieure|ci-dessus|initiale)"
                r"|\b(?:ignora\w*|olvida\w*|ignore|esqueca\w*|dimentica\w*)\s+(?:\w+\s+){0,3}"
                r"(?:instrucciones|instrucoes|istruzioni|reglas|regras|regole|indicaciones)\s+"
                r"(?:anteriores|previas|precedenti|de\s+arriba|acima|di\s+sopra)"
                r"|\b(?:negeer|vergeet)\s+(?:\w+\s+){0,3}(?:vorige|eerdere|voorgaande"
                r"|bovenstaande)\s+(?:instructies|opdrachten|regels)"
                r"|(?:проигнорируй|игнорируй|забудь|не\s+обращай\s+внимания\s+на)\w*\s+"
                r"(?:\w+\s+){0,3}(?:предыдущ|прежн|вышеуказанн|предшествующ)\w*\s+"
                r"(?:инструкци|указани|правил|команд)\w*"
                # zh, ja
                r"|(?:忽略|无视|忘记|忽视|忘掉)(?:掉)?(?:你)?(?:之前|以前|先前|上面|上述|前面|所有|全部|的)+"
                r"(?:指令|指示|说明|规则|提示|设定)"
                r"|(?:以前|前|上記|これまで)の(?:すべての)?(?:指示|命令|ルール)を(?:無視|忘れ)"
            ),
        ),
        (
            "instructions_revoked",
            _ALL,
            rf"\b(?:{_FILLER}\s+){{0,2}}(?:{_EARLIER}|system|original)\s+(?:\w+\s+)?{_ORDERS}\s+"
            r"(?:are|were|have\s+been|is|has\s+been)\s+(?:now\s+)?(?:cancel+ed|void|null|revoked"
            r"|obsolete|invalid|lifted|removed|overridden|superseded|no\s+longer\s+(?:valid"
            r"|apply|applicable|in\s+effect))\b"
            rf"|\b(?:{_EARLIER}|system)\s+{_ORDERS}\s+(?:no\s+longer|don't|do\s+not)\s+apply\b"
            rf"|\bregardless\s+of\s+(?:{_FILLER}\s+){{0,2}}{_EARLIER}\s+{_ORDERS}\b"
            r"|\bnew\s+(?:instructions?|rules|orders|directives)\s+(?:supersede|override|replace"
            r"|take\s+precedence\s+over)\b",
        ),
        (
            "instruction_banner",
            _ALL,
            # a shouted banner only: "**New task**" in a sprint plan is markdown, not a hijack
            r"\*{2,}\s*(?-i:(?:(?:NEW|URGENT|IMPORTANT|UPDATED|PRIORITY|CRITICAL)\s+){1,3}"
            r"(?:INSTRUCTIONS?|TASK|DIRECTIVES?|ORDERS))\s*\*{2,}",
        ),
        (
            "reveal_prompt_phrasings",
            _ALL,
            r"\b(?:first|opening|initial|last)\s+(?:sentence|line|words?|paragraph)\s+of\s+"
            r"(?:your|the)\s+(?:system\s+|initial\s+|original\s+|hidden\s+)?(?:prompt|instructions"
            r"|system\s+message)\b"
            r"|\b(?:prompt|instructions|configuration)\s+(?:that\s+)?you\s+(?:were|have\s+been)\s+"
            r"(?:initiali[sz]ed|configured|programmed|primed|set\s+up)\s+with\b"
            r"|\bwhat\s+(?:were|have)\s+you\s+(?:been\s+)?(?:told|instructed|programmed)\s+"
            r"(?:before|at\s+the\s+(?:start|beginning)|initially|not\s+to\s+(?:say|tell|reveal))\b"
            rf"|\b{_REVEAL_VERB}\s+(?:{_REVEAL_FILLER}\s+){{0,3}}(?:pre-?prompt|system\s+message"
            r"|(?:initial|original|hidden|secret)\s+(?:configuration|directives|setup))\b",
        ),
        (
            "exfiltration_link",
            _ALL,
            r"!\[[^\]\n]{0,100}\]\(\s*(?:https?:)?//[^)\s]{1,200}\?[^)\s]{0,200}=\s*(?:\{|\[|<|%7B"
            r"|\$|\.\.\.|…)"
            r"|<img\b[^>]{0,200}\bsrc\s*=\s*[\"']?(?:https?:)?//[^\"'\s>]{1,200}\?[^\"'\s>]{0,200}"
            r"=\s*(?:\{|\[|<|%7B|\$)",
        ),
        (
            "exfiltration_request",
            _ALL,
            r"\b(?:send|forward|post|upload|transmit|exfiltrate|leak|e-?mail|append|add|include"
            r"|encode|put)\s+(?:\w+\s+){0,4}?(?:(?:the\s+)?(?:full\s+|whole\s+|entire\s+)?"
            r"conversation|chat\s+(?:history|log)|(?:all\s+)?(?:previous|prior)\s+messages"
            r"|api[ _-]?keys?|passwords?|credentials|(?:session|access|auth)\s+tokens?"
            r"|system\s+prompt|cookies|secrets?)\b[^.\n]{0,80}?"
            r"(?:\b(?:to|at|into|in|via)\s+(?:(?:the|a|an)\s+)?(?:https?://|www\.|[\w.+-]+@[\w-]+\."
            r"|webhook|url|query\s+(?:string|parameter)|image\s+(?:url|link)|link\b)"
            r"|https?://)",
        ),
        (
            "reveal_system_prompt_i18n",
            _ALL,
            _folded(
                r"\b(?:zeig\w*|gib|nenn\w*|wiederhol\w*|kopier\w*|affiche\w*|montre\w*|repete\w*"
                r"|donne\w*|recopie\w*|muestra\w*|ensena\w*|repite\w*|dime|copia\w*|mostra\w*"
                r"|ripeti\w*|mostre\w*|repita\w*|copie\w*|toon|kopieer\w*|покажи|выведи|повтори"
                r"|скопируй|напиши)\b[^.?!\n]{0,40}?"
                r"\b(?:dein\w*|ton|tes|tu|tus|tuo|tuoi|seu|suas?|seus|je|jouw|твой|свой|твои|свои"
                r"|твоё|своё)\s+(?:\w+\s+)?(?:system-?prompt|systemnachricht|prompt\s+(?:systeme"
                r"|de\s+sistema|di\s+sistema|do\s+sistema)|message\s+systeme|mensaje\s+de\s+sistema"
                r"|messaggio\s+di\s+sistema|mensagem\s+de\s+sistema|systeemprompt"
                r"|(?:ursprunglich|anfanglich|initial)\w*\s+(?:anweisung|instruktion)\w*"
                r"|instructions\s+initiales|instrucciones\s+iniciales|istruzioni\s+iniziali"
                r"|instrucoes\s+iniciais|системн\w+\s+(?:промпт|сообщени\w*|инструкци\w*)"
                r"|исходн\w+\s+инструкци\w*)"
                r"|(?:你的|把你的)(?:系统提示词?|系统消息|初始指令|系统指令)"
                r"|(?:あなたの)?(?:システムプロンプト|システムメッセージ)を"
                r"(?:そのまま|全文|すべて)?(?:表示|見せ|教え|出力|コピー)"
            ),
        ),
        (
            "instructions_revoked_i18n",
            _ALL,
            _folded(
                r"\b(?:anweisungen|regeln|vorgaben|instruktionen)\s+(?:gelten\s+nicht\s+mehr"
                r"|sind\s+(?:aufgehoben|ungultig|nichtig))"
                r"|\b(?:regles|consignes|instructions)\s+(?:\w+\s+)?(?:ne\s+s'appliquent\s+plus"
                r"|sont\s+annulees|ne\s+comptent\s+plus)"
                r"|\b(?:reglas|instrucciones|regole|istruzioni|regras|instrucoes)\s+(?:\w+\s+)?"
                r"(?:ya\s+no\s+(?:valen|son\s+validas|aplican|cuentan)|non\s+valgono\s+piu"
                r"|nao\s+valem\s+mais|quedan?\s+anuladas?)"
                r"|\b(?:regels|instructies)\s+(?:\w+\s+)?gelden\s+niet\s+meer"
                r"|правила\s+(?:\w+\s+)?больше\s+не\s+действуют"
                r"|(?:规则|指令)(?:已经)?(?:作废|无效|失效)"
                r"|(?:ルール|指示)は(?:もう)?無効"
            ),
        ),
        (
            "new_instructions",
            _THIRD_PARTY,
            r"^[ \t>*#\[-]*(?:new|updated|revised|real|actual|secret|hidden)\s+"
            r"(?:system\s+)?instructions?\s*[:\]]"
            r"|\b(?:system|admin|developer)\s+override\b",
        ),
    )
)


_VERBS = ("ignor", "disregard", "forget", "skip", "overrid", "bypass", "abandon", "neglect",
          "discard", "drop", "stop follow", "quit follow", "cease follow", "not follow",
          "n't follow", "longer follow", "obey")  # fmt: skip
_I18N_VERBS = "ignor vergiss missacht oubli olvid esquec dimentic negeer vergeet игнор забуд "
_I18N_VERBS += "обращай 忽略 无视 忘记 忽视 忘掉 無視 忘れ"
# Words a rule cannot match without (every group must have one): a substring test skips the
# regular expression on the many texts that cannot match it, which keeps the tier fast.
TRIGGERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ignore_previous_instructions": (_VERBS,),
    "ignore_everything_above": (_VERBS,),
    "disregard_system_prompt": (
        (*_VERBS, "delete", "erase", "remove", "turn off", "disable"),
        ("system", "developer", "safety", "content"),
    ),
    "reveal_system_prompt": (
        ("prompt", "instruction", "message", "rules", "guideline"),
        ("system", "developer", "hidden", "secret", "initial", "original", "internal", "pre"),
    ),
    "repeat_text_above": (("above", "before this"),),
    "dan_jailbreak": (("dan", "do anything now"),),
    "jailbreak_mode": (
        ("mode", "unrestricted", "unfiltered", "uncensored", "jailbr", "amoral", "unaligned"),
    ),
    "roleplay_without_limits": (
        ("pretend", "imagine", "act", "behave", "role", "from now on"),
        ("no ", "without", "free", "ignor", "bypass"),
    ),
    "no_restrictions_claim": (("you have no", "you are free", "you are not", "you are no"),),
    "chat_template_tokens": (("<|", "[inst]", "[/inst]", "<<sys", "<</sys", "_of_turn>"),),
    "html_comment_instruction": (("<!--",),),
    "new_instructions": (("instruction", "override"),),
    "instructions_revoked": (
        (
            "cancel",
            "void",
            "null",
            "revoked",
            "obsolete",
            "invalid",
            "lifted",
            "removed",
            "overridden",
            "superseded",
            "no longer",
            "apply",
            "regardless",
            "supersede",
            "replace",
            "precedence",
        ),
    ),
    "instruction_banner": (("**",),),
    "reveal_prompt_phrasings": (
        (
            "sentence",
            "line",
            "word",
            "paragraph",
            "initiali",
            "configured",
            "programmed",
            "primed",
            "set up",
            "told",
            "instructed",
            "pre-prompt",
            "preprompt",
            "system message",
            "configuration",
            "directives",
            "setup",
        ),
    ),
    "exfiltration_link": (("![", "<img"),),
    "exfiltration_request": (
        (
            "conversation",
            "chat ",
            "messages",
            "api",
            "password",
            "credential",
            "token",
            "system prompt",
            "cookie",
            "secret",
        ),
        ("http", "www.", "@", "webhook", "url", "query", "link"),
    ),
    "reveal_system_prompt_i18n": (
        tuple(
            _folded(w)
            for w in [
                "systemnachricht",
                "prompt",
                "systeme",
                "sistema",
                "systeem",
                "системн",
                "исходн",
                "ursprungl",
                "anfangl",
                "initial",
                "iniciales",
                "iniziali",
                "iniciais",
                "系统",
                "初始",
                "システム",
            ]
        ),
    ),
    "instructions_revoked_i18n": (
        tuple(
            _folded(w)
            for w in [
                "gelten",
                "ungultig",
                "aufgehoben",
                "nichtig",
                "appliquent",
                "annulee",
                "comptent",
                "valen",
                "validas",
                "aplican",
                "cuentan",
                "valgono",
                "valem",
                "anulada",
                "gelden",
                "действуют",
                "作废",
                "无效",
                "失效",
                "無効",
            ]
        ),
    ),
    "ignore_previous_instructions_i18n": (tuple(_folded(w) for w in _I18N_VERBS.split()),),
}


def _may_match(name: str, lowered: str) -> bool:
    groups = TRIGGERS.get(name)
    return groups is None or all(any(t in lowered for t in group) for group in groups)


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Compile extra injection patterns (case-insensitive); a bad one raises ValueError."""
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p, re.IGNORECASE | re.MULTILINE))
        except re.error as exc:
            raise ValueError(f"invalid regular expression {p!r}: {exc}") from None
    return tuple(out)


def find_injection(
    text: str,
    target: str = "input",
    extra: Sequence[re.Pattern[str]] = (),
    *,
    scan_views: Sequence[View] | None = None,
) -> list[Match]:
    """Prompt-injection and jailbreak markers in ``text`` and in every payload decoded from
    it: one match per rule and view that fired (``scan_views`` reuses views already made)."""
    found: list[Match] = []
    for view in views(text) if scan_views is None else scan_views:
        body = view.norm.text
        lowered = body.lower()
        for name, targets, pattern in INJECTION_RULES:
            if target in targets and _may_match(name, lowered):
                m = pattern.search(body)
                if m:
                    found.append(Match(PI, *view.span(m.start(), m.end()), view.label(name)))
        for i, pattern in enumerate(extra):
            m = pattern.search(body)
            if m:
                found.append(Match(PI, *view.span(m.start(), m.end()), view.label(f"custom_{i}")))
        hidden = view.norm.hidden.strip()
        # Subdivision flags (🏴 + "gbeng") use a few tag characters; smuggled prose uses many.
        if view.fixed_span is None and view.norm.hidden_span and (len(hidden) > 8 or " " in hidden):
            found.append(Match(PI, *view.norm.hidden_span, "unicode_tag_smuggling"))
    found.sort(key=lambda m: m.start)
    return found

"""Every PII entity with its validity rule, and the per-request vault."""

from __future__ import annotations

import pickle

import pytest

from opsloop.guard.pii import PII_ENTITIES, find_pii, find_sensitive, redact
from opsloop.guard.scanners import PiiScanner
from opsloop.guard.vault import Vault


def found(text: str, entities: tuple[str, ...] = PII_ENTITIES) -> list[tuple[str, str]]:
    return [(m.type, text[m.start : m.end]) for m in find_pii(text, entities)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 123-45-6789.", [("pii.ssn", "123-45-6789")]),
        ("ssn 123 45 6789", [("pii.ssn", "123 45 6789")]),
        ("NINO AB 12 34 56 C", [("pii.nino", "AB 12 34 56 C")]),
        ("nino: JG103759A", [("pii.nino", "JG103759A")]),
        ("host 10.0.0.12 down", [("pii.ipv4", "10.0.0.12")]),
        ("from 2001:db8::1 and fe80::1%eth0", [("pii.ipv6", "2001:db8::1"),
                                               ("pii.ipv6", "fe80::1%eth0")]),
        ("mapped ::ffff:192.0.2.1 here", [("pii.ipv6", "::ffff:192.0.2.1")]),
        ("card 4111-1111-1111-1111", [("pii.card", "4111-1111-1111-1111")]),
        ("IBAN GB82 WEST 1234 5698 7654 32", [("pii.iban", "GB82 WEST 1234 5698 7654 32")]),
        ("mail a@b.io, call +44 20 7946 0958", [("pii.email", "a@b.io"),
                                                ("pii.phone", "+44 20 7946 0958")]),
    ],
)  # fmt: skip
def test_entities_are_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",  # area 000
        "SSN 666-12-3456",  # area 666
        "SSN 923-12-3456",  # area 9xx
        "SSN 123-00-4567",  # group 00
        "SSN 123-45-0000",  # serial 0000
        "SSN 123-45 6789",  # mixed separators
        "NINO QQ 12 34 56 C",  # Q is never a first letter
        "NINO AO 12 34 56 C",  # O is never a second letter
        "NINO GB 12 34 56 A",  # GB is not allocated
        "NINO AB 12 34 56 E",  # suffix A-D only
        "version 1.2.3.4 and v10.0.0.1",  # versions
        "host 256.1.1.1 and 1.2.3",  # not addresses
        "at 10:30:00 use std::vector and a::b",  # times, C++
        "card 4111 1111 1111 1112",  # Luhn fails
        "IBAN GB82 WEST 1234 5698 7654 33",  # mod-97 fails
    ],
)
def test_invalid_ones_are_left_alone(text: str) -> None:
    assert found(text, ("ssn", "nino", "ipv4", "ipv6", "card", "iban")) == []


def test_entity_selection_and_redaction() -> None:
    text = "ip 10.1.2.3 ssn 123-45-6789 mail a@b.io"
    assert found(text, ("email",)) == [("pii.email", "a@b.io")]
    assert redact(text, find_pii(text)) == "ip <IP_ADDRESS> ssn <SSN> mail <EMAIL>"
    assert PiiScanner().scan(text, target="output").text == redact(text, find_pii(text))
    with pytest.raises(ValueError, match=r"unknown PII entities \['passport'\]"):
        PiiScanner(("passport",))


def test_spans_point_at_the_original_text() -> None:
    text = "ssn 123\u200b-45-6789 end"  # a zero-width space inside
    [m] = find_pii(text)
    assert text[m.start : m.end] == "123\u200b-45-6789"


def test_a_secret_wins_over_pii_inside_it() -> None:
    text = "token AKIAIOSFODNN7EXAMPLE and a@b.io"
    assert [m.type for m in find_sensitive(text)] == ["secret.aws_key", "pii.email"]


def test_vault_pseudonymises_and_reveals() -> None:
    vault = Vault()
    text = "a@b.io wrote to c@d.io; a@b.io again, card 4111 1111 1111 1111, key ghp_" + "x" * 36
    out = vault.pseudonymize(text)
    assert out == "<EMAIL_1> wrote to <EMAIL_2>; <EMAIL_1> again, card <CARD_1>, key <SECRET>"
    assert vault.reveal("Reply to <EMAIL_2> and <EMAIL_1>, not <EMAIL_9>.") == (
        "Reply to c@d.io and a@b.io, not <EMAIL_9>."
    )
    assert "a@b.io" not in repr(vault) and len(vault) == 3
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(vault)
    vault.clear()
    assert vault.reveal("<EMAIL_1>") == "<EMAIL_1>"


def test_streamed_reveal_waits_for_a_placeholder_cut_in_two() -> None:
    vault = Vault()
    vault.pseudonymize("mail a@b.io")
    reveal = vault.revealer()
    pieces = ["Write to <EM", "AIL_", "1> today <", "b>"]
    out = [reveal.feed(p) for p in pieces]
    assert out == ["Write to ", "", "a@b.io today ", "<b>"]
    assert reveal.finish() == ""

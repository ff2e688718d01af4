"""The guardrails pii scanner finds every entity of the core's opsloop.guard.pii."""

from __future__ import annotations

from pathlib import Path

import opsloop_guardrails.plugin as plugin
from opsloop_guardrails.scanners import pii_scanner

from opsloop.guard import scan_text
from opsloop.testing import make_project


def test_national_ids_and_ip_addresses_are_redacted() -> None:
    text = "ssn 123-45-6789, nino AB 12 34 56 C, host 10.0.0.12, mail a@b.io"
    result = pii_scanner().scan(text, target="input")
    assert result.verdict == "redact"
    assert result.text == "ssn <SSN>, nino <NINO>, host <IP_ADDRESS>, mail <EMAIL>"
    assert [f.type for f in result.findings] == ["pii.ssn", "pii.nino", "pii.ipv4", "pii.email"]


def test_the_entities_setting_takes_the_new_names(tmp_path: Path) -> None:
    config = '[project]\nname = "p"\n[plugin.guardrails]\npii_entities = ["ipv6"]\n'
    project = make_project(tmp_path / "p", plugin, config=config)
    result = scan_text(project, "from 2001:db8::1, ssn 123-45-6789", target="output")
    # the guardrails pii scanner replaces the built-in one, and only ipv6 was asked for
    assert result.text == "from <IP_ADDRESS>, ssn 123-45-6789"
    project.close()

"""Every hook is documented and every hook has a test (as datasette enforces for its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsloop.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]
HOOKS = PluginManager.hook_names()


def test_there_are_hooks_for_every_stage() -> None:
    text = (ROOT / "core/src/opsloop/hookspecs.py").read_text()
    for stage in ("core", "ingest", "registry", "serve", "monitor", "guard", "respond"):
        assert re.search(rf"^# =+ {stage}$", text, re.MULTILINE), stage
    assert len(HOOKS) >= 30


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook: str) -> None:
    docs = (ROOT / "docs/hooks.md").read_text()
    assert re.search(rf"^### {hook}\(", docs, re.MULTILINE), f"docs/hooks.md lacks '### {hook}('"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook: str) -> None:
    """A hook is tested when test code other than this file implements or calls it."""
    pattern = re.compile(rf"(def {hook}\(|hook\.{hook}\(|\b{hook}\b.*\(project)")
    for path in (ROOT / "tests").rglob("*.py"):
        if path.name != Path(__file__).name and pattern.search(path.read_text()):
            return
    pytest.fail(f"no test implements or calls the '{hook}' hook")


def test_documented_hooks_exist() -> None:
    docs = (ROOT / "docs/hooks.md").read_text()
    documented = set(re.findall(r"^### (\w+)\(", docs, re.MULTILINE))
    assert documented == set(HOOKS), documented ^ set(HOOKS)

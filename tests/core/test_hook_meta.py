"""Every hook is documented with its full signature, and every hook has a test named for it
(as datasette enforces for its own hooks: tests/test_docs.py and test_plugin_hooks_have_tests).
"""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

from opsloop import hookspecs
from opsloop.plugins import PluginManager

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "hooks.md"
HOOKS = PluginManager.hook_names()
#: The line under a firstresult hook's heading starts with this.
FIRSTRESULT = "**firstresult**"
HEADING = re.compile(r"^### (\w+)\((.*)$", re.MULTILINE)


def declared_signature(hook: str) -> str:
    """``name(arg: Annotation, ...) -> Return`` as hookspecs.py writes it.

    hookspecs.py uses ``from __future__ import annotations``, so inspect hands back each
    annotation as the source text; ``str(inspect.signature())`` would quote them.
    """
    signature = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(
        p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {p.annotation}"
        for p in signature.parameters.values()
    )
    result = signature.return_annotation
    shown = "" if result is inspect.Signature.empty else f" -> {result}"
    return f"{hook}({params}){shown}"


def is_firstresult(hook: str) -> bool:
    return bool(getattr(hookspecs, hook).opsloop_spec["firstresult"])


@cache
def documented() -> dict[str, tuple[str, list[str]]]:
    """``{hook: (heading text after '### ', the section's lines)}`` from docs/hooks.md."""
    text = DOCS.read_text(encoding="utf-8")
    found: dict[str, tuple[str, list[str]]] = {}
    matches = list(HEADING.finditer(text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        body = text[match.end() : end].split("\n## ")[0]
        name = match.group(1)
        assert name not in found, f"docs/hooks.md documents hook '{name}' twice"
        found[name] = (match.group(0)[4:].rstrip(), [ln for ln in body.splitlines() if ln])
    return found


@cache
def hook_tests() -> dict[str, list[str]]:
    """``{hook: ["tests/...py::test_hook_..."]}``: each ``test_hook_*`` function under tests/,
    given to the longest hook name it starts with (``after_predict_batch`` before
    ``after_predict``). Tests that name no hook are listed under ``""``."""
    by_length = sorted(HOOKS, key=len, reverse=True)
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not node.name.startswith("test_hook_"):
                continue
            rest = node.name.removeprefix("test_hook_")
            hook = next((h for h in by_length if rest == h or rest.startswith(h + "_")), "")
            found.setdefault(hook, []).append(f"{path.relative_to(ROOT)}::{node.name}")
    return found


def test_there_are_hooks_for_every_stage() -> None:
    text = (ROOT / "core/src/opsloop/hookspecs.py").read_text()
    for stage in ("core", "ingest", "registry", "serve", "monitor", "guard", "respond"):
        assert re.search(rf"^# =+ {stage}$", text, re.MULTILINE), stage
    assert len(HOOKS) >= 30


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook: str) -> None:
    """docs/hooks.md has a heading with the hook's full signature, and says firstresult
    under it exactly when hookspecs.py declares it so."""
    expected = declared_signature(hook)
    assert hook in documented(), (
        f"docs/hooks.md has no heading for hook '{hook}'; add:\n### {expected}"
    )
    heading, lines = documented()[hook]
    assert heading == expected, (
        f"hook '{hook}': docs/hooks.md and hookspecs.py disagree\n"
        f"  docs/hooks.md:  ### {heading}\n"
        f"  hookspecs.py:   ### {expected}"
    )
    marked = bool(lines) and lines[0].startswith(FIRSTRESULT)
    if is_firstresult(hook):
        assert marked, (
            f"hook '{hook}' is firstresult in hookspecs.py: the line under its heading in "
            f"docs/hooks.md must start with {FIRSTRESULT}"
        )
    else:
        assert not any(FIRSTRESULT in line for line in lines), (
            f"hook '{hook}' is not firstresult in hookspecs.py, but docs/hooks.md says it is"
        )


def test_documented_hooks_exist() -> None:
    extra = sorted(set(documented()) - set(HOOKS))
    assert not extra, f"docs/hooks.md documents hooks that hookspecs.py does not declare: {extra}"


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook: str) -> None:
    """A test named ``test_hook_<hook>`` or ``test_hook_<hook>_<what>`` exists under tests/."""
    assert hook_tests().get(hook), (
        f"hook '{hook}' has no test: add `def test_hook_{hook}...` (tests/core/test_hooks.py "
        "for hooks the core calls) that runs the hook through the code that calls it"
    )


def test_every_hook_test_names_a_hook() -> None:
    """A ``test_hook_*`` test whose name matches no hook (a typo) would cover nothing."""
    assert not hook_tests().get(""), f"these tests name no hook: {hook_tests()['']}"

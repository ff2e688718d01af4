"""Every installed opsloop-* distribution is a conforming plugin found by its entry point."""

from __future__ import annotations

import importlib
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest

from opsloop.testing import assert_plugin_conforms

ROOT = Path(__file__).resolve().parents[2]
IN_TREE = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
EPS = {ep.name: ep for ep in entry_points(group="opsloop")}


def test_every_plugin_in_the_tree_is_installed_with_an_entry_point() -> None:
    assert IN_TREE, "no plugins under plugins/"
    missing = [name for name in IN_TREE if name not in EPS]
    assert not missing, f"not installed or no `opsloop` entry point: {missing}"


@pytest.mark.parametrize("name", IN_TREE)
def test_plugin_distribution_depends_on_the_core(name: str) -> None:
    dist = distribution(f"opsloop-{name}")
    requires = [r.split(";")[0].replace(" ", "") for r in dist.requires or []]
    assert any(r.startswith("opsloop") and not r.startswith("opsloop-") for r in requires)
    assert EPS[name].dist is not None and EPS[name].dist.name == f"opsloop-{name}"


@pytest.mark.parametrize("name", IN_TREE)
def test_plugin_conforms(name: str, tmp_path: Path) -> None:
    module = importlib.import_module(EPS[name].value)
    assert_plugin_conforms(module, tmp_path)
    info = module.describe_plugin()
    assert info.name == name, "describe_plugin().name must match the entry-point name"

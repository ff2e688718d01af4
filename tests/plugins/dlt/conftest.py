"""Fixtures for the dlt plugin tests: projects with the plugin, landing folders of CSV files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import opsloop_dlt.plugin
import pytest

from opsloop.plugins import PluginManager
from opsloop.project import Project


def open_project(root: Path, config: str = "") -> Project:
    """A project in ``root`` with the built-ins plus this plugin, registered as "dlt"."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "opsloop.toml").write_text(config or '[project]\nname = "t"\n', encoding="utf-8")
    manager = PluginManager(load_entrypoints=False, environ={}).load()
    manager.register(opsloop_dlt.plugin, name="dlt")
    return Project.open(root, plugins=manager, environ={})


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    made: list[Project] = []
    counter = iter(range(1000))

    def factory(config: str = "", root: Path | None = None) -> Project:
        project = open_project(root or tmp_path / f"project{next(counter)}", config)
        made.append(project)
        return project

    yield factory
    for project in made:
        project.close()


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project()

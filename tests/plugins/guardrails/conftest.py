"""Fixtures for the opsloop-guardrails tests: a project holding the built-ins plus the plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import opsloop_guardrails.plugin as guardrails_plugin
import pytest

from opsloop.project import Project
from opsloop.testing import make_project


@pytest.fixture
def guard_project_factory(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """Make projects with the guardrails plugin; ``config`` is opsloop.toml text."""
    made: list[Project] = []

    def factory(config: str = "") -> Project:
        project = make_project(tmp_path / f"p{len(made)}", guardrails_plugin, config=config)
        made.append(project)
        return project

    yield factory
    for project in made:
        project.close()


@pytest.fixture
def guard_project(guard_project_factory: Callable[..., Project]) -> Project:
    return guard_project_factory()

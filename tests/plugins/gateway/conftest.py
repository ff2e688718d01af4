"""Fixtures: the local OpenAI-wire upstream (one per module) and gateways in front of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import opsloop_gateway.plugin as gateway_plugin
import pytest
from gateway_testkit import BOB_KEY, ThreadServer, gateway_config, upstream_app
from opsloop_gateway.app import create_app

from opsloop.testing import make_project


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadServer]:
    server = ThreadServer(upstream_app()).start()
    yield server
    server.stop()


@pytest.fixture
def make_gateway(
    tmp_path: Path, upstream: ThreadServer
) -> Iterator[Callable[..., tuple[Any, ThreadServer]]]:
    """``make_gateway(extra_settings)`` -> (project, running gateway server)."""
    started: list[tuple[Any, ThreadServer]] = []

    def factory(
        extra: str = "", folder: str = "gw", upstream_url: str | None = None
    ) -> tuple[Any, ThreadServer]:
        upstream.app.state.received.clear()
        project = make_project(
            tmp_path / folder,
            gateway_plugin,
            config=gateway_config(upstream_url or upstream.url, extra),
            environ={"BOB_GATEWAY_KEY": BOB_KEY},
        )
        server = ThreadServer(create_app(project, project.settings("gateway"))).start()
        started.append((project, server))
        return project, server

    yield factory
    for project, server in started:
        server.stop()
        project.close()

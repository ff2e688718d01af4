"""Fixtures: the local OpenAI-wire upstream (one per module) and gateways in front of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import opsloop_gateway.plugin as gateway_plugin
import pytest
from gateway_testkit import ThreadServer, upstream_app
from opsloop_gateway.app import create_app
from opsloop_gateway.keys import hash_key

from opsloop.testing import make_project

ALICE_KEY = "olg-alice-0123456789abcdef0123456789"
BOB_KEY = "olg-bob-fedcba9876543210fedcba98765"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadServer]:
    server = ThreadServer(upstream_app()).start()
    yield server
    server.stop()


def gateway_config(upstream_url: str, extra: str = "") -> str:
    return (
        '[project]\nname = "gw"\n\n[plugin.gateway]\n'
        f'upstream = "{upstream_url}/v1"\n{extra}\n'
        "[[plugin.gateway.keys]]\n"
        f'name = "alice"\nsha256 = "{hash_key(ALICE_KEY)}"\ntenant = "acme"\n'
        'groups = ["support"]\n\n'
        '[[plugin.gateway.keys]]\nname = "bob"\nenv = "BOB_GATEWAY_KEY"\ntenant = "globex"\n'
    )


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


def received(upstream: ThreadServer) -> list[dict[str, Any]]:
    """The request bodies the upstream got since the gateway was made."""
    return list(upstream.app.state.received)

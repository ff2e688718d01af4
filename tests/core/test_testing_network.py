"""The offline guard plugin authors get from opsloop.testing."""

from __future__ import annotations

import socket

import pytest


def test_no_network_refuses_outside_addresses_and_lets_loopback_through(
    opsloop_no_network: list[object],
) -> None:
    with socket.socket() as sock, pytest.raises(OSError, match="forbids outbound network"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed
    with socket.socket() as sock, pytest.raises(OSError, match="forbids outbound network"):
        sock.connect_ex(("192.0.2.1", 443))
    assert opsloop_no_network == [("192.0.2.1", 80), ("192.0.2.1", 443)]
    opsloop_no_network.clear()  # the fixture fails the test on recorded attempts
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())  # loopback: allowed

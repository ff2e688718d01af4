"""A deadline on request headers: uvicorn's HTTP protocols, closing a connection that trickles.

uvicorn times out idle keep-alive connections but not a request whose headers arrive one
byte at a time (a slowloris): each byte re-arms nothing and the connection stays open for
ever. These subclasses arm a timer whenever a connection waits for a request's headers
(when it opens and when a byte of a new request arrives) and close the connection if the
headers are not complete by then. Bodies have their own deadline in the app
(``body_timeout_seconds``: a 408), and ``max_connections`` caps what is open at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is in uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

#: The uvicorn Config attribute that holds the header deadline in seconds.
CONFIG_ATTRIBUTE = "opsloop_header_timeout"


class _HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol (``self.cycle`` is the current request)."""

    config: Any
    cycle: Any
    transport: asyncio.Transport
    _deadline: asyncio.TimerHandle | None = None
    _armed_for: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if self._deadline is None and (before is None or before.response_complete):
            self._arm()  # the first byte of a new request: its headers have a deadline
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before:
            self._disarm()  # the headers are in: the app (and its body deadline) takes over

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        seconds = getattr(self.config, CONFIG_ATTRIBUTE, None)
        if not seconds:
            return
        self._armed_for = self.cycle
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.cycle is self._armed_for and not self.transport.is_closing():
            self.transport.close()


class H11HeaderDeadline(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a header deadline."""


if HttpToolsProtocol is not None:

    class HttpToolsHeaderDeadline(_HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol with a header deadline."""


def protocol_path() -> str:
    """The import path of the protocol for ``http="auto"``: httptools when installed."""
    name = "HttpToolsHeaderDeadline" if HttpToolsProtocol is not None else "H11HeaderDeadline"
    return f"{__name__}:{name}"

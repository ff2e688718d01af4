"""A daemon thread that does one thing every few seconds until it is stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opsloop_fastapi.threadname import daemon_thread

logger = logging.getLogger("opsloop_fastapi.ticker")


class Ticker:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread named ``name``.

    A tick that raises is logged and the ticking goes on: background work of a server
    (the alias poll, the after-predict hooks) must never stop because of one bad round.
    """

    def __init__(self, name: str, interval: float, tick: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start ticking (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = daemon_thread(self._run, self.name)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ticking and wait up to ``timeout`` seconds for a tick in progress."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - report it and keep ticking
                logger.warning("%s: %s: %s", self.name, type(exc).__name__, exc)

"""OS-level names for the server's threads, so ``top -H``, perf and /proc tell them apart.

Python names its threads only for itself; on Linux every thread of ``opsloop serve`` would
show up as ``opsloop``. The name is cut to the kernel's 15 bytes (``opsloop-predlog``).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

_PR_SET_NAME = 15


@functools.cache
def _prctl() -> Any:
    """libc's prctl, or None where there is none (not Linux, no libc symbol)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


def name_native_thread(name: str | None = None) -> None:
    """Give the calling thread's OS thread ``name`` (default: its Python name); else no-op."""
    prctl = _prctl()
    if prctl is not None:
        text = (name or threading.current_thread().name).encode("ascii", "replace")[:15]
        prctl(_PR_SET_NAME, text, 0, 0, 0)


def daemon_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """An unstarted daemon thread that carries ``name`` in Python and in the OS."""

    def run() -> None:
        name_native_thread(name)
        target()

    return threading.Thread(target=run, name=name, daemon=True)

"""OS-level names for the server's threads, so ``top -H``, perf and /proc tell them apart.

Python names its threads only for itself; on Linux every thread of ``opsloop serve`` would
show up as ``opsloop``. The name is cut to the kernel's 15 bytes (``opsloop-predlog``).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_PR_SET_NAME = 15
_prctl: Any = None


def name_native_thread(name: str | None = None) -> None:
    """Give the calling thread's OS thread ``name`` (default: its Python name); else no-op."""
    global _prctl
    if not sys.platform.startswith("linux"):
        return
    try:
        if _prctl is None:
            import ctypes

            _prctl = ctypes.CDLL(None).prctl
        text = (name or threading.current_thread().name).encode("ascii", "replace")[:15]
        _prctl(_PR_SET_NAME, text, 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl here: names are a convenience
        _prctl = False if _prctl is None else _prctl

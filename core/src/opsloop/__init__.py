"""opsloop: a thin core of pluggy hooks for the production ML loop.

Plugins import :data:`hookimpl` from here and implement hooks from
:mod:`opsloop.hookspecs`.
"""

from __future__ import annotations

import pluggy

from opsloop.errors import OpsloopError

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("opsloop")

__all__ = ["OpsloopError", "__version__", "hookimpl"]

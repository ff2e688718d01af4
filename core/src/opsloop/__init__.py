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


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext opsloop``: the magics of the opsloop-jupyter distribution, if installed."""
    try:
        from opsloop_jupyter import load_ipython_extension as load
    except ImportError:
        raise OpsloopError(
            "%load_ext opsloop needs the opsloop-jupyter distribution: "
            "pip install opsloop-jupyter (or `make setup` in the opsloop repository)"
        ) from None
    load(ipython)

"""opsloop-fastapi: online scoring on FastAPI + uvicorn, the opsloop serve stage.

The entry-point module :mod:`opsloop_fastapi.plugin` imports nothing heavy; the server
(:mod:`opsloop_fastapi.app`, :mod:`opsloop_fastapi.server`) is imported when a hook runs.
"""

from __future__ import annotations

__version__ = "0.1.0"

"""opsloop-dlt: the ingest stage on dlt (landing files and SQL tables into DuckDB).

Importing this package imports neither dlt nor pandas: the heavy modules load inside hooks.
"""

from __future__ import annotations

__version__ = "0.1.0"

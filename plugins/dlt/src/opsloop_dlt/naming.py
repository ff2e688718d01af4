"""dlt's naming convention (snake_case), for matching user-given names to warehouse names."""

from __future__ import annotations

from functools import cache

from opsloop_dlt import _env


@cache
def _convention() -> object:
    _env.configure_dlt()
    from dlt.common.normalizers.naming.snake_case import NamingConvention

    return NamingConvention()


def normalize(name: str) -> str:
    """The identifier dlt gives a table or dataset ``name`` ("Daily-Sales" -> daily_sales)."""
    return _convention().normalize_table_identifier(name)  # type: ignore[attr-defined]

"""Durations as people write them in config and on the command line: ``90s``, ``5m``, ``1h``."""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_FORM = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (a number and a unit: s, m, h, d or w); ValueError otherwise."""
    match = _FORM.fullmatch(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration; write a positive number and a unit, e.g. 90s, 5m, "
            "1h, 2d or 1w"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]

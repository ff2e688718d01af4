"""Names that become paths: a model, a runbook, a source, a plugin. One check for all.

A name from a person or a config file is joined to the project home to make a folder or a
file; ``../../escape`` must never leave the home, and a name a file system cannot hold must
be refused with a line that says what is allowed.
"""

from __future__ import annotations

import re

from opsloop.errors import OpsloopError

#: Letters, digits, ``.``, ``_`` and ``-``; starting with a letter or digit; at most 128.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_safe_name(name: str) -> bool:
    """True when ``name`` can be one path segment anywhere opsloop writes."""
    return bool(SAFE_NAME.fullmatch(name)) and ".." not in name


def safe_name(name: str, what: str = "name") -> str:
    """``name`` when it is safe as one path segment; else a one-line OpsloopError."""
    if not is_safe_name(str(name)):
        shown = repr(name) if len(str(name)) <= 80 else repr(str(name)[:77] + "...")
        raise OpsloopError(
            f"{what} {shown} cannot be used as a file name: use letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, at most 128 characters, no '..'"
        )
    return str(name)

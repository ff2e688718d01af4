"""Errors opsloop shows to a person: one line that says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable


class OpsloopError(Exception):
    """An error for the user, not a bug: the CLI prints its message on one line and exits 2.

    ``exit_code`` lets a command say "checked and found a problem" (1) apart from
    "could not run as asked" (2).
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(OpsloopError):
    """opsloop.toml or an OPSLOOP_* variable is malformed."""


class PluginError(OpsloopError):
    """A plugin could not be loaded, or breaks the hook contract."""


class ParameterError(OpsloopError):
    """A runbook or command parameter has the wrong name or type."""


class IntegrityError(OpsloopError):
    """Stored data does not match its recorded hash (audit log, model artifact)."""

    exit_code = 1


def first_line(exc: BaseException, *, limit: int = 300) -> str:
    """The first non-blank line of an exception's message ("" when it has none).

    Vendor exceptions (MLflow's, pydantic's) carry a ``message`` attribute or a multi-line
    text; a person needs the first line, cut to ``limit`` characters.
    """
    message = getattr(exc, "message", None)
    text = str(message if isinstance(message, str) and message.strip() else exc)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def one_line(exc: BaseException, *, limit: int = 300) -> str:
    """An exception as one line for a person: ``Type: first line`` (``Type`` alone when it
    has no message). An :class:`OpsloopError` is already for a person: its message as is."""
    line = first_line(exc, limit=limit)
    if isinstance(exc, OpsloopError):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to ``name``, else ``""``.

    Appended to "no X named 'name'" messages, as pytest and git do.
    """
    import difflib

    hint = difflib.get_close_matches(name, [str(c) for c in choices], n=1)
    return f"; did you mean '{hint[0]}'?" if hint else ""

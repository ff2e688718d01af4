"""Errors opsloop shows to a person: one line that says what is wrong and how to fix it."""

from __future__ import annotations


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

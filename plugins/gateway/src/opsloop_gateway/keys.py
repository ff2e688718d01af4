"""Caller API keys: kept as SHA-256 hashes, looked up by the hash of what a request shows."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opsloop.errors import OpsloopError
from opsloop.guard.context import Caller
from opsloop_gateway.settings import CallerKey

KEY_PREFIX = "olg-"


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key, as ``[[plugin.gateway.keys]] sha256`` holds it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyRing:
    """Callers by the hash of their key."""

    by_hash: Mapping[str, Caller]

    def __len__(self) -> int:
        return len(self.by_hash)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller whose key an ``Authorization: Bearer KEY`` header shows, else None."""
        if not authorization:
            return None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return self.by_hash.get(hash_key(key.strip()))


def load_keys(specs: Sequence[CallerKey], environ: Mapping[str, str]) -> KeyRing:
    """The key ring of the settings; a key read from a missing variable is a one-line error."""
    by_hash: dict[str, Caller] = {}
    for spec in specs:
        if spec.env is not None:
            value = environ.get(spec.env, "")
            if not value:
                raise OpsloopError(
                    f"[plugin.gateway] key '{spec.name}': environment variable {spec.env} is "
                    "not set; set it to the caller's key or give sha256 instead"
                )
            digest = hash_key(value)
        else:
            assert spec.sha256 is not None
            digest = spec.sha256
        if digest in by_hash:
            raise OpsloopError(
                f"[plugin.gateway] keys '{by_hash[digest].id}' and '{spec.name}' share one key"
            )
        by_hash[digest] = Caller(spec.name, spec.tenant, frozenset(spec.groups))
    return KeyRing(by_hash)

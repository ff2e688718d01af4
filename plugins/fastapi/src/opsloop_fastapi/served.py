"""The model a server scores with, held so that it can be swapped atomically.

A request reads :attr:`ModelHolder.current` once and uses that :class:`ServedModel` to the
end, so a later hot-swap (canary, rollback) never mixes two versions inside one request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsloop.records import ModelVersionRef, utcnow
from opsloop_fastapi.schema import InputSchema


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version with its input schema; immutable once built."""

    ref: ModelVersionRef
    model: Any
    schema: InputSchema
    has_proba: bool
    loaded_at: str = field(default_factory=utcnow)

    @classmethod
    def build(cls, ref: ModelVersionRef, model: Any) -> ServedModel:
        """Wrap a loaded model; it must have ``predict(DataFrame)``."""
        if not callable(getattr(model, "predict", None)):
            from opsloop.errors import OpsloopError

            raise OpsloopError(
                f"model {ref.name} version {ref.version} has no predict() method; "
                "the registry plugin must load an object with predict(DataFrame)"
            )
        return cls(
            ref=ref,
            model=model,
            schema=InputSchema.from_signature(ref.name, ref.signature),
            has_proba=callable(getattr(model, "predict_proba", None)),
        )

    def describe(self) -> dict[str, Any]:
        """What /version reports."""
        return {
            "name": self.ref.name,
            "version": self.ref.version,
            "aliases": list(self.ref.aliases),
            "uri": self.ref.uri,
            "run_id": self.ref.run_id,
            "store": self.ref.store,
            "loaded_at": self.loaded_at,
        }


class ModelHolder:
    """The server's current model; :meth:`swap` replaces it atomically."""

    def __init__(self, served: ServedModel) -> None:
        self._current = served
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ServedModel, ServedModel], None]] = []

    @property
    def current(self) -> ServedModel:
        return self._current

    def swap(self, served: ServedModel) -> ServedModel:
        """Serve ``served`` from the next request on; return the model it replaced."""
        with self._lock:
            old, self._current = self._current, served
            listeners = list(self._listeners)
        for listener in listeners:
            listener(old, served)
        return old

    def on_swap(self, listener: Callable[[ServedModel, ServedModel], None]) -> None:
        """Call ``listener(old, new)`` after every swap (metrics, OpenAPI cache, audit)."""
        with self._lock:
            self._listeners.append(listener)

"""The models a server scores with, held so that they can be swapped atomically.

A request reads :attr:`ModelHolder.slots` once and uses those :class:`ServedModel` objects
to the end, so a hot-swap (alias moved, rollback, promotion) never mixes two versions
inside one request, and requests in flight finish on the version they started with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsloop.records import ModelVersionRef, utcnow
from opsloop_fastapi.fastmodel import FastModel
from opsloop_fastapi.schema import NUMERIC_FAST_TYPES, FastReader, InputSchema


@dataclass(frozen=True)
class ServedModel:
    """One loaded model version with its input schema and fast path; immutable once built."""

    ref: ModelVersionRef
    model: Any
    schema: InputSchema
    has_proba: bool
    alias: str = ""
    digest: str | None = None
    fast: FastModel | None = None
    reader: FastReader | None = None
    loaded_at: str = field(default_factory=utcnow)

    @classmethod
    def build(
        cls,
        ref: ModelVersionRef,
        model: Any,
        *,
        alias: str = "",
        digest: str | None = None,
        compile_models: bool = True,
    ) -> ServedModel:
        """Wrap a loaded model; it must have ``predict(DataFrame)``."""
        if not callable(getattr(model, "predict", None)):
            from opsloop.errors import OpsloopError

            raise OpsloopError(
                f"model {ref.name} version {ref.version} has no predict() method; "
                "the registry plugin must load an object with predict(DataFrame)"
            )
        schema = InputSchema.from_signature(ref.name, ref.signature)
        has_proba = callable(getattr(model, "predict_proba", None))
        fast = reader = None
        columns = schema.columns or []
        if (
            columns
            and all(c.type in NUMERIC_FAST_TYPES and c.required for c in columns)
            and len({c.name for c in columns}) == len(columns)
        ):
            from opsloop_fastapi.fastmodel import build

            fast = build(model, schema.names or [], has_proba, compile_models=compile_models)
            if fast is not None:
                reader = FastReader(schema.names or [], fast.columns)
        return cls(
            ref=ref,
            model=model,
            schema=schema,
            has_proba=has_proba,
            alias=alias,
            digest=digest,
            fast=fast,
            reader=reader,
        )

    def describe(self) -> dict[str, Any]:
        """What /version reports."""
        return {
            "name": self.ref.name,
            "version": self.ref.version,
            "alias": self.alias or None,
            "aliases": list(self.ref.aliases),
            "uri": self.ref.uri,
            "run_id": self.ref.run_id,
            "store": self.ref.store,
            "artifact_digest": self.digest,
            "loaded_at": self.loaded_at,
            "fast_path": self.fast.kind if self.fast is not None else None,
        }


@dataclass(frozen=True)
class Slots:
    """What serves right now: the champion, and the challenger when one is configured."""

    champion: ServedModel
    challenger: ServedModel | None = None


class ModelHolder:
    """The server's current models; :meth:`swap` replaces one of them atomically."""

    def __init__(self, served: ServedModel, challenger: ServedModel | None = None) -> None:
        self.slots = Slots(served, challenger)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[ServedModel, ServedModel], None]] = []

    @property
    def current(self) -> ServedModel:
        """The champion."""
        return self.slots.champion

    @property
    def challenger(self) -> ServedModel | None:
        return self.slots.challenger

    def swap(self, served: ServedModel) -> ServedModel:
        """Serve ``served`` as champion from the next request on; return the one it replaced."""
        with self._lock:
            old = self.slots.champion
            self.slots = Slots(served, self.slots.challenger)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(old, served)
        return old

    def set_challenger(self, served: ServedModel | None) -> ServedModel | None:
        """Replace (or remove, with None) the challenger; return the previous one."""
        with self._lock:
            old = self.slots.challenger
            self.slots = Slots(self.slots.champion, served)
        return old

    def on_swap(self, listener: Callable[[ServedModel, ServedModel], None]) -> None:
        """Call ``listener(old, new)`` after every champion swap (metrics, OpenAPI cache)."""
        with self._lock:
            self._listeners.append(listener)

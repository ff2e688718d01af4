"""Hot-swap: follow the registry aliases and swap in a new version without failing a request.

When an alias moves (seen by the poller every ``poll_seconds``, or on ``/admin/reload``),
the new version is loaded through the registry beside the one serving (``store.load``
checks its artifact digest), wrapped and probed, and only then swapped in, atomically.
Requests in flight finish on the version they started with. A version that fails to load
or to verify is never served; the old one keeps serving and the failure is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from opsloop.errors import IntegrityError, OpsloopError
from opsloop_fastapi.served import ServedModel
from opsloop_fastapi.ticker import Ticker

if TYPE_CHECKING:
    from opsloop_fastapi.state import ServingState

logger = logging.getLogger("opsloop_fastapi.follow")


def store_of(project: Any) -> Any:
    """The registry backend, through the core (``opsloop.registry.get_store``)."""
    from opsloop.registry import get_store

    return get_store(project)


def artifact_digest(store: Any, ref: Any, model: Any) -> str | None:
    """The digest the registry checked the artifacts against, from ``provenance(ref)``.

    ``provenance`` is part of the ModelStore protocol, so any registry plugin can tell;
    a model object that carries its own ``artifact_digest`` wins. None when nobody knows.
    """
    for attribute in ("artifact_digest", "digest"):
        value = getattr(model, attribute, None)
        if isinstance(value, str) and value:
            return value
    provenance = getattr(store, "provenance", None)
    if not callable(provenance):
        return None
    try:
        artifacts = (provenance(ref) or {}).get("artifacts") or {}
    except Exception:  # noqa: BLE001 - the digest is informative; its absence is not fatal
        logger.warning("model %s v%s: no provenance for /version", ref.name, ref.version)
        return None
    value = artifacts.get("digest") or artifacts.get("manifest_sha256")
    return str(value) if value else None


#: Registry metadata on a challenger version: the share of traffic its canary gets.
CANARY_SHARE_KEY = "canary_share"


def canary_share(project: Any, ref: Any, default: float) -> float:
    """The challenger's canary share: its version's ``canary_share`` metadata, else ``default``.

    A retraining policy (``[respond.retrain.<model>] canary_share``) writes it when it sets
    the challenger, so the share travels with the version to every replica.
    """
    try:
        from opsloop.registry import has_governance, metadata

        if not has_governance(store_of(project)):
            return default
        value = metadata(project, ref.name, ref.version).get(CANARY_SHARE_KEY)
        return min(1.0, max(0.0, float(value))) if value else default
    except Exception as exc:  # noqa: BLE001 - a bad value must not stop the swap
        logger.warning(
            "model %s v%s: canary_share metadata ignored: %s", ref.name, ref.version, exc
        )
        return default


def load_served(
    project: Any, name: str, alias: str, *, compile_models: bool, store: Any = None
) -> ServedModel:
    """Resolve ``name@alias``, load it (integrity-checked by the store) and wrap it."""
    store = store or store_of(project)
    ref = store.resolve(name, alias)
    model = store.load(ref)
    return ServedModel.build(
        ref,
        model,
        alias=alias,
        digest=artifact_digest(store, ref, model),
        compile_models=compile_models,
    )


class Follower:
    """Keeps the served champion (and challenger) on the versions their aliases name."""

    def __init__(
        self,
        state: ServingState,
        *,
        name: str,
        alias: str | None,
        challenger_alias: str | None,
        poll_seconds: float,
    ) -> None:
        self.state = state
        self.name = name
        self.alias = alias
        self.challenger_alias = challenger_alias
        self.poll_seconds = poll_seconds
        self.swaps = 0
        self.failures = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._ticker = Ticker(f"opsloop-follow-{name}", poll_seconds, self._poll)

    @property
    def follows(self) -> bool:
        """Whether anything can move: a pinned version number never does."""
        return bool(self.alias and not self.alias.isdigit()) or bool(self.challenger_alias)

    # ------------------------------------------------------------------ polling
    def start(self) -> None:
        if self.poll_seconds > 0 and self.follows:
            self._ticker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._ticker.stop(timeout)

    def _poll(self) -> None:
        try:
            self.check()
        except Exception as exc:  # noqa: BLE001 - the poller reports and keeps serving
            logger.warning("model %s: alias check failed: %s", self.name, exc)

    # ------------------------------------------------------------------ checking
    def check(self, *, actor: str | None = None) -> dict[str, Any]:
        """Swap in whatever the aliases name now; report each slot (raises on failure)."""
        with self._lock:
            store = store_of(self.state.project)
            report: dict[str, Any] = {}
            if self.alias:
                report["champion"] = self._follow(store, "champion", self.alias, actor)
            if self.challenger_alias:
                report["challenger"] = self._follow(
                    store, "challenger", self.challenger_alias, actor
                )
            return report

    def _follow(self, store: Any, slot: str, alias: str, actor: str | None) -> dict[str, Any]:
        holder = self.state.holder
        current = holder.current if slot == "champion" else holder.challenger
        try:
            ref = store.resolve(self.name, alias)
        except OpsloopError:
            if slot == "challenger":  # no challenger any more: stop the canary and shadow
                if current is not None:
                    holder.set_challenger(None)
                    self._after_swap(slot, current, None, actor)
                return {"alias": alias, "version": None, "changed": current is not None}
            raise
        if current is not None and current.ref.version == ref.version:
            return {"alias": alias, "version": ref.version, "changed": False}
        started = time.perf_counter()
        try:
            model = store.load(ref)
            served = ServedModel.build(
                ref,
                model,
                alias=alias,
                digest=artifact_digest(store, ref, model),
                compile_models=self.state.settings.compile_models,
            )
        except Exception as exc:
            self.failures += 1
            self.last_error = f"{self.name} v{ref.version}: {exc}"
            if isinstance(exc, IntegrityError):
                from opsloop.registry.access import report_integrity

                report_integrity(self.state.project, self.name, ref.version, exc, "load")
            m = self.state.metrics
            m.child(m.model_loads, slot, "failed").inc()
            self._audit(
                "serve.swap.refused",
                slot,
                current,
                ref.version,
                actor,
                {"error": str(exc)[:300]},
            )
            raise
        if slot == "challenger" and self.state.settings.canary_share > 0:
            self.state.router.share = canary_share(
                self.state.project, ref, self.state.settings.canary_share
            )
        old = holder.swap(served) if slot == "champion" else holder.set_challenger(served)
        self._after_swap(slot, old, served, actor)
        seconds = round(time.perf_counter() - started, 3)
        return {
            "alias": alias,
            "version": ref.version,
            "previous": old.ref.version if old is not None else None,
            "changed": True,
            "load_seconds": seconds,
        }

    def _after_swap(
        self, slot: str, old: ServedModel | None, new: ServedModel | None, actor: str | None
    ) -> None:
        self.swaps += 1
        state = self.state
        m = state.metrics
        m.child(m.model_loads, slot, "swapped").inc()
        m.set_models(state.holder.slots)
        version = new.ref.version if new is not None else None
        detail = {"digest": new.digest} if new is not None and new.digest else None
        self._audit("serve.swap", slot, old, version, actor, detail)
        logger.info(
            "model %s: %s now serves version %s (was %s)",
            self.name,
            slot,
            version,
            old.ref.version if old is not None else None,
        )

    def _audit(
        self,
        action: str,
        slot: str,
        old: ServedModel | None,
        version: str | None,
        actor: str | None,
        detail: dict[str, Any] | None,
    ) -> None:
        try:
            self.state.project.audit.append(
                action,
                f"{self.name}@{slot}",
                before={"version": old.ref.version if old is not None else None},
                after={"version": version},
                actor=actor,
                detail={"plugin": "fastapi", **(detail or {})},
            )
        except Exception:
            logger.exception("could not write the audit entry for %s", action)

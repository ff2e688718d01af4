"""Import guardrails-ai with its network side effects switched off, and say whether they are.

What guardrails-ai 0.11 does on its own, found in its source:

* ``guardrails/utils/docs_utils.py`` (imported by ``guardrails/__init__``) runs
  ``nltk.download("punkt")`` at import when nltk is installed and punkt is not on disk: an
  HTTPS fetch from raw.githubusercontent.com and a new ``~/nltk_data`` folder. nltk is only
  used there by guardrails' document chunking helpers, which opsloop never calls.
* ``guardrails/utils/hub_telemetry_utils.py``: the ``HubTelemetry`` singleton builds an OTLP
  exporter to an AWS endpoint and a BatchSpanProcessor; ``Guard`` and ``Validator`` enable it
  whenever ``~/.guardrailsrc`` says ``enable_metrics=true`` — the default when the file does
  not exist — so every ``Guard.validate`` queues spans that are exported in the background
  and flushed at interpreter exit.
* ``guardrails.settings.disable_tracing`` (no environment variable; ``GUARDRAILS_DISABLE_TRACING``
  does not exist in 0.11) gates the OpenTelemetry spans guardrails adds to the *global* tracer
  provider — the host application's, if it configured one.
* ``GUARDRAILS_RUN_SYNC`` unset means each validation spins an asyncio event loop and, with
  uvloop installed, replaces the process-wide event-loop policy.

So, before the first import: ``nltk`` is hidden from guardrails' import (or, if nltk is
already loaded, ``nltk.download`` is refused for its duration); after it: the telemetry
singleton is replaced by an inert one (no tracer, no exporter, never enabled) and
``settings.disable_tracing`` is set. ``OTEL_SDK_DISABLED`` / ``OTEL_TRACES_EXPORTER`` are
deliberately left alone: they are process-wide and would switch off the host's own tracing.
Nothing is written to ``~/.guardrailsrc``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

_lock = threading.RLock()
_state: dict[str, Any] = {"imported_by_us": False, "import_seconds": None, "refused": []}


def _refuse_download(*args: Any, **kwargs: Any) -> bool:
    """Stand-in for ``nltk.download`` while guardrails imports: no network, report failure."""
    _state["refused"].append(args[0] if args else kwargs.get("info_or_id"))
    return False


@contextlib.contextmanager
def _no_nltk_download() -> Iterator[None]:
    loaded = sys.modules.get("nltk")
    if loaded is not None:  # already imported (evidently does): refuse downloads meanwhile
        _state["nltk"] = "download refused"
        original = loaded.download
        setattr(loaded, "download", _refuse_download)  # noqa: B010
        try:
            yield
        finally:
            setattr(loaded, "download", original)  # noqa: B010
        return
    _state["nltk"] = "hidden from guardrails"
    # guardrails does `try: import nltk except ImportError: nltk = None`: a None entry in
    # sys.modules makes that import fail, so it skips punkt (and 4-5 s of nltk import).
    sys.modules["nltk"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if "nltk" in sys.modules and sys.modules["nltk"] is None:
            del sys.modules["nltk"]


def _silence_telemetry() -> None:
    from guardrails.settings import settings
    from guardrails.utils.hub_telemetry_utils import HubTelemetry

    settings.disable_tracing = True
    current = HubTelemetry._instance
    if current is not None and getattr(current, "_tracer", None) is None:
        return
    # Replace (or pre-empt) the singleton with one that has no tracer: every guardrails call
    # site checks `_enabled and _tracer is not None`, so flipping `_enabled` stays harmless.
    inert = object.__new__(HubTelemetry)
    inert._enabled = False
    inert._tracer = None
    inert._prop = None
    inert._carrier = {}
    inert._tracer_provider = None
    inert._processor = None
    _state["replaced_live_telemetry"] = current is not None
    HubTelemetry._instance = inert


def load_guardrails() -> ModuleType:
    """Import guardrails-ai offline (idempotent) and return the module."""
    with _lock:
        os.environ.setdefault("GUARDRAILS_RUN_SYNC", "true")
        if "guardrails" not in sys.modules:
            started = time.perf_counter()
            with _no_nltk_download():
                importlib.import_module("guardrails")
            _state["imported_by_us"] = True
            _state["import_seconds"] = time.perf_counter() - started
        _silence_telemetry()
        return sys.modules["guardrails"]


@dataclass(frozen=True)
class OfflineStatus:
    """What ``opsloop doctor`` reports about guardrails' network side effects."""

    version: str
    import_seconds: float | None
    imported_by_us: bool
    nltk: str  # how the import-time punkt download was avoided, or why it may have run
    nltk_download_possible: bool
    telemetry_inert: bool
    telemetry_was_live: bool  # guardrails had built its exporter before this module stepped in
    tracing_disabled: bool
    run_sync: bool
    rc_path: Path
    rc_exists: bool
    rc_enable_metrics: bool | None

    @property
    def ok(self) -> bool:
        return (
            not self.nltk_download_possible
            and self.telemetry_inert
            and not self.telemetry_was_live
            and self.tracing_disabled
        )


def status() -> OfflineStatus:
    """Load guardrails offline, then check each side effect is really off."""
    load_guardrails()
    from guardrails.classes.rc import RC
    from guardrails.settings import settings
    from guardrails.utils import docs_utils
    from guardrails.utils.hub_telemetry_utils import HubTelemetry
    from guardrails.version import GUARDRAILS_VERSION

    how = _state.get("nltk", "")
    possible = False
    nltk = getattr(docs_utils, "nltk", None)
    if nltk is None:
        how = how or "not installed"
    else:
        try:
            nltk.data.find("tokenizers/punkt")
            how = how or "punkt already on disk"
        except LookupError:
            # Only a problem when guardrails was imported before this module could step in.
            possible = not _state["imported_by_us"]
            how = how or "guardrails was imported before opsloop_guardrails: it may have run"
    telemetry = HubTelemetry._instance
    rc_path = Path("~/.guardrailsrc").expanduser()
    rc_metrics = RC.load().enable_metrics if rc_path.exists() else None
    return OfflineStatus(
        version=GUARDRAILS_VERSION,
        import_seconds=_state["import_seconds"],
        imported_by_us=bool(_state["imported_by_us"]),
        nltk=how,
        nltk_download_possible=possible,
        telemetry_inert=telemetry is not None and getattr(telemetry, "_tracer", 1) is None,
        telemetry_was_live=bool(_state.get("replaced_live_telemetry")),
        tracing_disabled=settings.disable_tracing is True,
        run_sync=os.environ.get("GUARDRAILS_RUN_SYNC", "").lower() == "true",
        rc_path=rc_path,
        rc_exists=rc_path.exists(),
        rc_enable_metrics=rc_metrics,
    )

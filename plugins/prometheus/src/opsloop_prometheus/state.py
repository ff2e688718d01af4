"""The newest monitor figures of every model, kept in one JSON file under the project home.

``monitor check`` and ``monitor watch`` run in their own processes while the serving app and
the exporter serve /metrics in theirs: the ``after_drift_check`` and ``after_quality_check``
hooks write what a check found here (``<home>/prometheus/monitor.json``, written to a
temporary file and renamed, under a file lock), and every scrape reads it back. Only the
newest check of each model is kept, plus how many checks ran (the ``_total`` counters).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsloop.interfaces import DriftResult, FeatureDrift
    from opsloop.quality import QualityResult

FOLDER = "prometheus"
FILE = "monitor.json"
SCHEMA = 1


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _feature(f: FeatureDrift) -> dict[str, Any]:
    return {
        "feature": f.feature,
        "method": f.method,
        "p_value": _num(f.p_value),
        "adjusted_p_value": _num(f.statistic) if f.p_value is not None else None,
        "effect": {k: _num(v) for k, v in (f.effect or {}).items()},
        "drifted": bool(f.drifted),
        "missing_rate": _num(f.missing_rate),
    }


def drift_entry(result: DriftResult, when: float) -> dict[str, Any]:
    """What the metrics need of one drift check."""
    quality: dict[str, int] = {}
    for finding in result.quality:
        key = f"{finding.type}\t{finding.severity}"
        quality[key] = quality.get(key, 0) + 1
    return {
        "version": str(result.model_version or ""),
        "detector": result.detector,
        "drifted": bool(result.drifted),
        "share_drifted": _num(result.share_drifted) or 0.0,
        "features_compared": len(result.features),
        "features_drifted": len(result.drifted_features),
        "rows": int(result.current_rows),
        "window": result.window,
        "features": [_feature(f) for f in result.features],
        "prediction": _feature(result.prediction) if result.prediction is not None else None,
        "quality_findings": quality,
        "at": when,
    }


def quality_entry(result: QualityResult, when: float) -> dict[str, Any]:
    """What the metrics need of one model-quality comparison."""
    return {
        "version": str(result.version),
        "task": result.task,
        "rows": int(result.rows),
        "metrics": {k: _num(v) for k, v in result.metrics.items()},
        "baseline": {k: _num(v) for k, v in result.baseline.items()},
        "compared": sorted(c.metric for c in result.changes),
        "degraded": sorted(result.degraded),
        "skipped": result.skipped,
        "at": when,
    }


class MonitorState:
    """Read and update ``<home>/prometheus/monitor.json``; reads are cached by mtime."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[tuple[int, int], dict[str, Any]] | None = None

    @classmethod
    def of(cls, home: Path) -> MonitorState:
        return cls(home / FOLDER / FILE)

    def read(self) -> dict[str, Any]:
        """``{"models": {name: {...}}}``; empty when nothing was checked yet (or unreadable)."""
        try:
            stat = self.path.stat()
        except OSError:
            return {"models": {}}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"models": {}}
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            return {"models": {}}
        self._cached = (key, data)
        return data

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on ``monitor.json.lock`` (POSIX; elsewhere the rename alone keeps
        readers safe, and two writers at once may lose one update)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:
            yield
            return
        with open(self.path.with_name(FILE + ".lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _update(self, model: str, kind: str, entry: dict[str, Any]) -> None:
        with self._locked():
            self._cached = None
            data = self.read()
            data["schema"] = SCHEMA
            models = data.setdefault("models", {})
            current = models.setdefault(model, {})
            current[kind] = entry
            counter = f"{kind}_checks"
            current[counter] = int(current.get(counter, 0)) + 1
            body = json.dumps(data, sort_keys=True, allow_nan=False).encode()
            temporary = self.path.with_name(f".{FILE}.{os.getpid()}.tmp")
            with temporary.open("wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            self._cached = None

    def record_drift(self, model: str, result: DriftResult, when: float | None = None) -> None:
        self._update(model, "drift", drift_entry(result, time.time() if when is None else when))

    def record_quality(self, model: str, result: QualityResult, when: float | None = None) -> None:
        self._update(model, "quality", quality_entry(result, time.time() if when is None else when))

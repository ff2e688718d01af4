"""Checks of served traffic: a window of the prediction log (or any table or file) against
the version's stored profile, plus model quality when feedback labels arrived; and the
loop that checks every served model on an interval (``opsloop monitor watch``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, one_line
from opsloop.reference import PREDICTION

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.monitor import DriftCheck
    from opsloop.project import Project
    from opsloop.quality import QualityResult
    from opsloop.records import ModelVersionRef, Signal

#: Columns of a prediction log that are neither features nor the prediction.
LOG_COLUMNS = frozenset(
    ("request_id", "row", "model_version", "role", "logged_at", "latency_ms", "label",
     "probabilities", "model")
)  # fmt: skip


@dataclass
class Findings:
    """Everything one check of a model found: drift, data quality and model quality."""

    model: str
    version: str
    window: str
    rows: int
    drift: DriftCheck | None = None
    quality: QualityResult | None = None
    quality_signal: Signal | None = None
    skipped: str = ""  # why no drift check ran

    @property
    def signals(self) -> list[Signal]:
        found = list(self.drift.signals) if self.drift else []
        return found + ([self.quality_signal] if self.quality_signal else [])


def read_window(
    project: Project,
    ref: ModelVersionRef,
    *,
    window: str | None = None,
    rows: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """The logged rows of ``ref``'s version: the last ``window`` (e.g. ``1h``) or the newest
    ``rows``. Returns the frame and a label for it."""
    from opsloop.durations import parse_duration

    since = None
    label = f"last {rows} rows" if rows else ""
    if not rows:
        span = window or project.config.monitor.window
        try:
            seconds = parse_duration(span)
        except ValueError as exc:
            raise OpsloopError(f"--window: {exc}") from None
        since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
        label = f"last {span}"
    frame = project.hook.read_predictions(project=project, model=ref.name, since=since)
    if frame is None:
        raise OpsloopError(
            f"no prediction log for model '{ref.name}': serve it (`opsloop serve`) or check a "
            "table or file with --against"
        )
    if "model_version" in frame.columns:
        frame = frame[frame["model_version"].astype(str) == str(ref.version)]
    if rows:
        if "logged_at" in frame.columns:
            frame = frame.sort_values("logged_at", kind="stable")
        frame = frame.tail(rows)
    return frame.reset_index(drop=True), label


def features_window(frame: pd.DataFrame) -> pd.DataFrame:
    """The window's feature columns and the prediction: a log's bookkeeping columns dropped."""
    keep = [c for c in frame.columns if c not in LOG_COLUMNS]
    if PREDICTION in keep:
        values = frame[PREDICTION]
        sample = values.dropna().head(20).tolist()
        if any(isinstance(v, list | dict | tuple) for v in sample):
            keep.remove(PREDICTION)  # several outputs per row: not one distribution
    return frame[keep]


def check_model(
    project: Project,
    model: str,
    *,
    version: str | None = None,
    window: str | None = None,
    rows: int | None = None,
    against: str | None = None,
    detector: str | None = None,
    columns: list[str] | None = None,
) -> Findings:
    """Check one model's served window (or ``against``, a table or file) for drift, data
    quality and model quality; every finding is emitted as a Signal."""
    from opsloop.datasource import open_source
    from opsloop.monitor import get_detector, run_check
    from opsloop.profile_store import load_profile
    from opsloop.quality import check_quality
    from opsloop.reference import version_for

    ref = version_for(project, model, version)
    if against:
        source = open_source(project, against)
        frame, label = source.frame(), source.name
    else:
        frame, label = read_window(project, ref, window=window, rows=rows)
    found = Findings(model=model, version=ref.version, window=label, rows=len(frame))
    minimum = project.config.monitor.min_rows
    lineage = {"model_version": ref.version, "window": label}
    if len(frame) < minimum:
        found.skipped = (
            f"{len(frame)} row(s) in the window ({label}), fewer than [monitor] min_rows {minimum}"
        )
    else:
        chosen = get_detector(project, detector)
        current = features_window(frame)
        if callable(getattr(chosen, "check", None)):
            reference: Any = load_profile(project, model, ref.version)
        else:
            reference = _training_frame(project, ref)
            current = current[[c for c in current.columns if c in reference.columns]]
        found.drift = run_check(
            project,
            model,
            reference,
            current,
            detector=chosen.name,
            columns=columns,
            window=label,
            lineage=lineage,
        )
    found.quality, found.quality_signal = check_quality(project, ref, frame, window=label)
    return found


def _training_frame(project: Project, ref: ModelVersionRef) -> pd.DataFrame:
    """The raw training data, for a detector that cannot read a stored profile."""
    from opsloop.datasource import TABLE_PREFIX, open_source
    from opsloop.reference import features_of, training_data

    dataset, _ = training_data(project, ref)
    if not dataset:
        raise OpsloopError(
            f"this detector needs the training data, and {ref.name} version {ref.version} "
            "records none; use the 'profile' detector"
        )
    frame = open_source(project, TABLE_PREFIX + dataset).frame()
    features = [f for f in features_of(ref) if f in frame.columns]
    return frame[features] if features else frame


def served_models(project: Project, models: list[str] | None = None) -> list[ModelVersionRef]:
    """The version each model serves (its ``[monitor] alias``); models without it are left out."""
    from opsloop.registry import get_store

    store = get_store(project)
    names = models or store.list_models()
    alias = project.config.monitor.alias
    served = []
    for name in names:
        try:
            served.append(store.resolve(name, alias))
        except OpsloopError:
            if models:  # a model asked for by name must be served
                raise
    return served


def watch(
    project: Project,
    *,
    interval: float,
    once: bool = False,
    models: list[str] | None = None,
    report: Callable[[str, Findings | None, str], None] = lambda *_: None,
    stop: threading.Event | None = None,
) -> int:
    """Check every served model, then again every ``interval`` seconds until ``stop`` is set
    (or after one round with ``once``). ``report(model, findings, error)`` is called per
    check; a model whose check fails is reported and the others go on. Returns rounds run.
    """
    stop = stop or threading.Event()
    rounds = 0
    while not stop.is_set():
        started = time.monotonic()
        rounds += 1
        try:
            refs = served_models(project, models)
        except OpsloopError as exc:
            report("", None, one_line(exc))
            refs = []
        for ref in refs:
            if stop.is_set():
                break
            try:
                report(ref.name, check_model(project, ref.name, version=ref.version), "")
            except OpsloopError as exc:
                report(ref.name, None, one_line(exc))
        if once:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return rounds

"""One prediction end to end: serve hooks, the model call, metrics and the prediction log.

Runs in a worker thread (the model and the hooks are synchronous); the event loop only
parses the request and writes the response.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.interfaces import PredictContext
from opsloop.records import utcnow
from opsloop_fastapi.predlog import LogEntry, PredictionLog

if TYPE_CHECKING:
    import pandas as pd

    from opsloop_fastapi.metrics import ServerMetrics
    from opsloop_fastapi.served import ServedModel

logger = logging.getLogger("opsloop_fastapi.scoring")


class PredictRefused(Exception):
    """A before_predict hook refused the request (HTTP 4xx with its message)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


class PredictFailed(Exception):
    """The model raised: 400 when it rejected the rows (ValueError, TypeError, OpsloopError)."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class Prediction:
    """What one scored request returns."""

    request_id: str
    predictions: list[Any]
    probabilities: list[Any] | None
    latency_ms: float


def refusal_status(error: BaseException) -> int:
    """The HTTP status for a refusal: the error's ``status_code`` when 4xx, else 400."""
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


class Scorer:
    """Calls the serve hooks around the model and feeds metrics and the prediction log."""

    def __init__(self, hook: Any, metrics: ServerMetrics, log: PredictionLog | None) -> None:
        self.hook = hook
        self.metrics = metrics
        self.log = log

    def score(
        self,
        served: ServedModel,
        frame: pd.DataFrame,
        *,
        request_id: str,
        headers: Mapping[str, str],
        with_proba: bool = False,
    ) -> Prediction:
        """Score ``frame``; raise PredictRefused or PredictFailed, never anything else."""
        ref = served.ref
        labels = {"model": ref.name, "version": ref.version}
        ctx = PredictContext(request_id=request_id, model=ref, inputs=frame, headers=headers)
        try:
            self.hook.before_predict(context=ctx)
        except OpsloopError as exc:
            self.metrics.prediction_errors.labels(**labels, kind="refused").inc()
            raise PredictRefused(str(exc), refusal_status(exc)) from None
        logged_at = utcnow()
        start = time.perf_counter()
        try:
            outputs = served.model.predict(ctx.inputs)
            proba = (
                served.model.predict_proba(ctx.inputs) if with_proba and served.has_proba else None
            )
            predictions = to_jsonable(outputs)
            probabilities = to_jsonable(proba) if proba is not None else None
        except Exception as exc:  # noqa: BLE001 - every model error becomes a clean response
            self._on_error(ctx, exc)
            self.metrics.prediction_errors.labels(**labels, kind="model").inc()
            if isinstance(exc, ValueError | TypeError | OpsloopError):
                raise PredictFailed(
                    f"the model could not score these rows: {_first_line(exc)}", 400
                ) from None
            raise PredictFailed(
                f"the model failed ({type(exc).__name__}); see the server log, request_id "
                f"{request_id}",
                500,
            ) from None
        seconds = time.perf_counter() - start
        latency_ms = round(seconds * 1000, 3)
        self.metrics.predict_seconds.labels(**labels).observe(seconds)
        self.metrics.prediction_rows.labels(**labels).inc(len(ctx.inputs))
        ctx.outputs = predictions
        ctx.latency_ms = latency_ms
        try:
            self.hook.after_predict(context=ctx)
        except Exception:
            logger.exception("after_predict hook raised (request_id %s)", request_id)
            self.metrics.hook_errors.labels(hook="after_predict").inc()
        if self.log is not None:
            self.log.submit(
                LogEntry(
                    request_id=request_id,
                    model=ref.name,
                    model_version=ref.version,
                    logged_at=logged_at,
                    latency_ms=latency_ms,
                    inputs=ctx.inputs,
                    predictions=predictions,
                )
            )
        return Prediction(request_id, predictions, probabilities, latency_ms)

    def _on_error(self, ctx: PredictContext, error: BaseException) -> None:
        logger.error(
            "model %s v%s raised on request %s: %s",
            ctx.model.name,
            ctx.model.version,
            ctx.request_id,
            _first_line(error),
            exc_info=error,
        )
        try:
            self.hook.on_predict_error(context=ctx, error=error)
        except Exception:
            logger.exception("on_predict_error hook raised (request_id %s)", ctx.request_id)
            self.metrics.hook_errors.labels(hook="on_predict_error").inc()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def to_jsonable(outputs: Any) -> list[Any]:
    """Model outputs as a JSON-ready list (MLflow's shapes; NaN and inf become null)."""
    import numpy as np
    import pandas as pd

    result: list[Any]
    if isinstance(outputs, pd.DataFrame):
        result = _clean(outputs.to_dict(orient="records"))
    elif isinstance(outputs, pd.Series | np.ndarray):
        array = np.atleast_1d(np.asarray(outputs))
        finite = array.dtype.kind in "biu" or (
            array.dtype.kind == "f" and bool(np.isfinite(array).all())
        )
        result = array.tolist() if finite else _clean(array.tolist())
    elif isinstance(outputs, list | tuple):
        result = _clean(list(outputs))
    else:
        result = [_clean(outputs)]
    return result


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _clean(tolist())
    return str(value)

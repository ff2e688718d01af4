"""One prediction request end to end, in a model thread: parse, validate, hooks, model, log.

The event loop only reads the body and writes the bytes this module returns. The fast
path (an all-``double`` signature and a verified :mod:`~opsloop_fastapi.fastmodel`) goes
from JSON to a float64 array to the model without pandas; anything it does not accept
goes through the pydantic validation of :mod:`~opsloop_fastapi.schema`, which names
every bad field. The serve hooks see a :class:`~opsloop_fastapi.context.LazyContext`
whose ``inputs`` frame is built only when a hook reads it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, first_line, one_line
from opsloop_fastapi.context import LazyContext
from opsloop_fastapi.decode import (
    DecodeLimits,
    DecodeTooLarge,
    check_json_body,
    check_json_rows,
    read_csv,
    read_parquet,
)
from opsloop_fastapi.entries import make_entry
from opsloop_fastapi.hookcalls import has_impls
from opsloop_fastapi.outputs import ATOMS, to_jsonable
from opsloop_fastapi.predlog import PredictionLog
from opsloop_fastapi.schema import InputError
from opsloop_fastapi.threadname import daemon_thread

if TYPE_CHECKING:
    import pandas as pd

    from opsloop_fastapi.afterpredict import AfterPredict
    from opsloop_fastapi.metrics import ServerMetrics
    from opsloop_fastapi.served import ServedModel

logger = logging.getLogger("opsloop_fastapi.scoring")

try:
    import orjson

    def loads(body: bytes) -> Any:
        """JSON as Python values; stdlib json decides what orjson refuses (NaN, deep nesting)."""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            return _stdlib_loads(body)

    def dumps(content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:
            return json.dumps(content, default=str).encode()

except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it

    def loads(body: bytes) -> Any:
        return _stdlib_loads(body)

    def dumps(content: Any) -> bytes:
        return json.dumps(content, default=str, separators=(",", ":")).encode()


def _stdlib_loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InputError.body(f"body is not valid JSON: {exc}", "json_invalid") from None


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


class Unsupported(Exception):
    """A content type /invocations does not read."""


def refusal_status(error: BaseException) -> int:
    """The HTTP status for a refusal: the error's ``status_code`` when 4xx, else 400."""
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


@dataclass
class Job:
    """One request for a model thread."""

    kind: str  # "v1" or "mlflow"
    served: ServedModel
    role: str  # champion or challenger
    body: bytes
    mime: str
    request_id: str
    raw_headers: list[tuple[bytes, bytes]]
    challenger: ServedModel | None = None  # set when the request is copied to the shadow
    timed_out: list[bool] = field(default_factory=lambda: [False])
    #: the model raised (or the server failed) on this request: a challenger's request is
    #: then answered by the champion (see ``Front.score``)
    failed: bool = False


#: (status, body, extra headers, (served, role, seconds in the model, rows) when scored).
Reply = tuple[int, bytes, list[tuple[bytes, bytes]], Any]


def error_body(kind: str, status: int, message: str, errors: list[Any] | None = None) -> bytes:
    """A JSON error in the endpoint's shape: opsloop's ``detail`` or MLflow's ``message``."""
    body: dict[str, Any]
    if kind == "mlflow":
        code = {
            403: "PERMISSION_DENIED",
            408: "DEADLINE_EXCEEDED",
            413: "REQUEST_LIMIT_EXCEEDED",
            429: "REQUEST_LIMIT_EXCEEDED",
            504: "DEADLINE_EXCEEDED",
        }.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        body = {"error_code": code, "message": message}
        if errors is not None:
            body["errors"] = errors
    else:
        body = {"detail": message}
        if errors is not None:
            body["errors"] = errors
            body["fields"] = sorted({str(e["field"]) for e in errors if e.get("field") is not None})
    return dumps(body)


class Scorer:
    """Runs jobs: the serve hooks around the model, metrics, the prediction log, the shadow."""

    def __init__(
        self,
        hook: Any,
        metrics: ServerMetrics,
        log: PredictionLog | None,
        *,
        shadow: ShadowRunner | None = None,
        after: AfterPredict | None = None,
        limits: DecodeLimits,
    ) -> None:
        self.hook = hook
        self.limits = limits
        self.metrics = metrics
        self.log = log
        self.shadow = shadow
        self.has_before = has_impls(hook, "before_predict")
        self.has_error = has_impls(hook, "on_predict_error")
        self.after = after if after is not None and after.active else None

    # ------------------------------------------------------------------ entry point
    def run(self, job: Job) -> Reply:
        """Score one request; every outcome is a reply, never an exception."""
        try:
            return self._run(job)
        except Exception as exc:  # a bug (in a hook, or ours): a clean 500
            logger.exception("request %s failed", job.request_id)
            job.failed = True
            message = (
                f"the server failed ({type(exc).__name__}); see the server log, request_id "
                f"{job.request_id}"
            )
            return 500, error_body(job.kind, 500, message), [], None

    def _run(self, job: Job) -> Reply:
        served = job.served
        kind = job.kind
        try:
            array, frame = self.parse(job)
        except Unsupported as exc:
            self._count_error(served, "input")
            return 415, error_body(kind, 415, str(exc)), [], None
        except DecodeTooLarge as exc:
            self._count_error(served, "too_large")
            return 413, error_body(kind, 413, str(exc)), [], None
        except InputError as exc:
            self._count_error(served, "input")
            status = 422 if kind == "v1" else 400
            return status, error_body(kind, status, exc.message, exc.errors), [], None
        try:
            predictions, probabilities, seconds = self.score(
                job, array, frame, with_proba=kind == "v1" and served.has_proba
            )
        except (PredictRefused, PredictFailed) as exc:
            return exc.status_code, error_body(kind, exc.status_code, str(exc)), [], None
        headers = [(b"x-model-version", served.ref.version.encode())]
        scored = (served, job.role, seconds, len(predictions))
        if kind == "mlflow":
            return 200, dumps({"predictions": predictions}), headers, scored
        content: dict[str, Any] = {
            "request_id": job.request_id,
            "model": served.ref.name,
            "version": served.ref.version,
            "predictions": predictions,
        }
        if probabilities is not None:
            content["probabilities"] = probabilities
        return 200, dumps(content), headers, scored

    # ------------------------------------------------------------------ parsing
    def parse(self, job: Job) -> tuple[Any, Any]:
        """(array in the fast model's column order, or None; DataFrame, or None)."""
        served = job.served
        reader = served.reader
        limits = self.limits
        if job.kind == "v1":
            check_json_body(job.body, limits)
            payload = loads(job.body)
            check_json_rows(payload, limits, union=served.schema.names is None)
            if reader is not None and type(payload) is dict:
                array = None
                if len(payload) == 1 and "records" in payload:
                    array = reader.records(payload["records"])
                elif len(payload) == 2 and "columns" in payload and "data" in payload:
                    array = reader.split(payload["columns"], payload["data"])
                if array is not None:
                    return array, None
            frame = _frame(served.schema.frame_from_predict_body, payload)
        else:
            mime = job.mime
            if mime in ("application/json", ""):
                check_json_body(job.body, limits)
                payload = loads(job.body)
                check_json_rows(payload, limits, union=served.schema.names is None)
                if reader is not None and type(payload) is dict:
                    array = _mlflow_fast(reader, payload)
                    if array is not None:
                        return array, None
                frame = _frame(served.schema.frame_from_mlflow, payload)
            elif mime in ("text/csv", "application/vnd.apache.parquet"):
                frame = _frame(_read_table, served, job.body, mime, limits)
            else:
                raise Unsupported(
                    f"unsupported content type '{mime}'; send application/json, text/csv or "
                    "application/vnd.apache.parquet"
                )
        if served.fast is not None:
            import numpy as np

            return frame[list(served.fast.columns)].to_numpy(dtype=np.float64), None
        return None, frame

    # ------------------------------------------------------------------ scoring
    def score(
        self, job: Job, array: Any, frame: Any, *, with_proba: bool
    ) -> tuple[list[Any], list[Any] | None, float]:
        """Hooks, model, log; raise PredictRefused or PredictFailed, nothing else.

        Returns the predictions, the probabilities and the seconds spent in the model (the
        caller records the metrics, on the event loop, so model threads share no lock).
        """
        served = job.served
        ref = served.ref
        fast = served.fast
        columns = fast.columns if fast is not None else None
        ctx: LazyContext | None = None
        if self.has_before:
            ctx = LazyContext(
                job.request_id, ref, job.raw_headers, array=array, columns=columns, frame=frame
            )
            try:
                self.hook.before_predict(context=ctx)
            except OpsloopError as exc:
                self._count_error(served, "refused")
                raise PredictRefused(str(exc), refusal_status(exc)) from None
            if ctx.touched:
                array, frame = _after_hook_inputs(ctx._frame, columns)
                if array is not None:
                    ctx._array, ctx._columns = array, columns
        started = time.time()
        t0 = time.perf_counter()
        try:
            if array is not None and fast is not None:
                if with_proba:
                    outputs, proba = fast.both(array)
                else:
                    outputs, proba = fast.predict(array), None
            else:
                if frame is None:
                    frame = ctx.inputs if ctx is not None else _to_frame(array, columns)
                outputs = served.model.predict(frame)
                proba = served.model.predict_proba(frame) if with_proba else None
            predictions = to_jsonable(outputs)
            probabilities = to_jsonable(proba) if proba is not None else None
        except Exception as exc:  # noqa: BLE001 - every model error becomes a clean response
            if ctx is None and self.has_error:
                ctx = LazyContext(
                    job.request_id, ref, job.raw_headers, array=array, columns=columns, frame=frame
                )
            job.failed = True
            self._model_error(job, ctx, exc)
            if isinstance(exc, ValueError | TypeError | OpsloopError):
                why = first_line(exc) or type(exc).__name__
                raise PredictFailed(f"the model could not score these rows: {why}", 400) from None
            raise PredictFailed(
                f"the model failed ({type(exc).__name__}); see the server log, request_id "
                f"{job.request_id}",
                500,
            ) from None
        seconds = time.perf_counter() - t0
        latency_ms = round(seconds * 1000, 3)
        if job.timed_out[0]:
            return predictions, probabilities, seconds  # the client got a 504: not logged
        after, log = self.after, self.log
        if after is not None or log is not None:
            # A plain tuple of atoms (see opsloop_fastapi.entries): the GC stops tracking it,
            # and the inputs go as bytes so the array is freed here, in this thread.
            if array is not None:
                rows, data, names = array.shape[0], array.tobytes(), columns
            else:
                rows, data, names = len(frame), frame, None
            out: Any = predictions
            if rows == 1 and len(predictions) == 1 and type(predictions[0]) in ATOMS:
                out = predictions[0]
            entry = (
                started,
                job.request_id,
                ref.name,
                ref.version,
                job.role,
                latency_ms,
                rows,
                names,
                data,
                out,
                proba if array is not None and proba is not None else probabilities,
                tuple(job.raw_headers) if after is not None and after.per_request else None,
                ctx,
            )
            if after is not None:  # the hooks' thread hands it on to the log
                after.submit(entry, ref)
            else:
                log.submit(entry, rows)  # type: ignore[union-attr]
        if job.challenger is not None and self.shadow is not None:
            self.shadow.submit(job, array, columns, frame)
        return predictions, probabilities, seconds

    def _model_error(self, job: Job, ctx: LazyContext | None, error: BaseException) -> None:
        ref = job.served.ref
        logger.error(
            "model %s v%s raised on request %s: %s",
            ref.name,
            ref.version,
            job.request_id,
            one_line(error),
            exc_info=error,
        )
        self._count_error(job.served, "model")
        if self.has_error and ctx is not None:
            try:
                self.hook.on_predict_error(context=ctx, error=error)
            except Exception:
                logger.exception("on_predict_error hook raised (request_id %s)", job.request_id)
                self.metrics.child(self.metrics.hook_errors, "on_predict_error").inc()

    def _count_error(self, served: ServedModel, kind: str) -> None:
        m = self.metrics
        m.child(m.prediction_errors, served.ref.name, served.ref.version, kind).inc()


def _to_frame(array: Any, columns: tuple[str, ...] | None) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(array, columns=list(columns or ()))


def _after_hook_inputs(frame: Any, columns: tuple[str, ...] | None) -> tuple[Any, Any]:
    """After a hook read or replaced the inputs: the array when still exact, else the frame."""
    import numpy as np

    if (
        columns is not None
        and frame is not None
        and hasattr(frame, "columns")
        and tuple(frame.columns) == columns
        and all(dtype == np.float64 for dtype in frame.dtypes)
    ):
        return frame.to_numpy(), None
    return None, frame


def _mlflow_fast(reader: Any, payload: dict[str, Any]) -> Any:
    keys = set(payload)
    keys.discard("params")
    if len(keys) != 1:
        return None
    key = keys.pop()
    value = payload[key]
    if key == "dataframe_records":
        return reader.records(value)
    if key == "dataframe_split":
        if type(value) is dict and set(value) <= {"columns", "data", "index"}:
            return reader.split(value.get("columns"), value.get("data"))
        return None
    if key in ("instances", "inputs") and type(value) is list and value:
        if type(value[0]) is dict:
            return reader.records(value)
        if type(value[0]) is list:
            return reader.signature_rows(value)
    return None


def _frame(parse: Any, *args: Any) -> pd.DataFrame:
    """Run a schema parser; an unexpected failure on odd input is still the input's fault."""
    try:
        return parse(*args)  # type: ignore[no-any-return]
    except (InputError, Unsupported, DecodeTooLarge):
        raise
    except Exception as exc:  # noqa: BLE001 - bad input must never become a 500
        logger.warning("input parser raised on odd input: %r", exc)
        raise InputError.body(f"could not read the input: {exc}", "input_invalid") from None


def _read_table(served: ServedModel, body: bytes, mime: str, limits: DecodeLimits) -> pd.DataFrame:
    """A CSV or Parquet body as a validated frame, refused first if it would decode too big."""
    try:
        read = read_csv if mime == "text/csv" else read_parquet
        frame = read(body, limits)
    except DecodeTooLarge:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is the client's input
        kind = "CSV" if mime == "text/csv" else "Parquet"
        raise InputError.body(f"body is not a valid {kind} table: {exc}", "table_invalid") from None
    return served.schema.frame_from_frame(frame)


# ---------------------------------------------------------------------- shadow
class ShadowRunner:
    """Scores copies of champion requests with the challenger, off the response path."""

    def __init__(self, metrics: ServerMetrics, log: PredictionLog | None, size: int = 1000) -> None:
        self.metrics = metrics
        self.log = log
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._thread: threading.Thread | None = None
        self.scored = 0
        self.failed = 0

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = daemon_thread(self._run, "opsloop-shadow")
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        thread.join(timeout)
        self._thread = None

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued copy was scored (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def submit(self, job: Job, array: Any, columns: Any, frame: Any) -> None:
        challenger = job.challenger
        if challenger is None:
            return
        try:
            self._queue.put_nowait((job.request_id, challenger, array, columns, frame))
        except queue.Full:
            self.metrics.child(self.metrics.shadow, challenger.ref.name, "dropped").inc()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._score(*item)
            finally:
                self._queue.task_done()

    def _score(
        self, request_id: str, served: ServedModel, array: Any, columns: Any, frame: Any
    ) -> None:
        ref = served.ref
        m = self.metrics
        started = time.time()
        t0 = time.perf_counter()
        try:
            fast = served.fast
            if array is not None and fast is not None and tuple(fast.columns) == tuple(columns):
                outputs = fast.predict(array)
                log_array, log_frame = array, None
            else:
                if frame is None:
                    frame = _to_frame(array, columns)
                outputs = served.model.predict(frame)
                log_array, log_frame = None, frame
            predictions = to_jsonable(outputs)
        except Exception as exc:  # noqa: BLE001 - the shadow never affects anything served
            self.failed += 1
            logger.warning("shadow model %s v%s raised: %s", ref.name, ref.version, exc)
            m.child(m.shadow, ref.name, "failed").inc()
            return
        seconds = time.perf_counter() - t0
        self.scored += 1
        m.child(m.shadow, ref.name, "scored").inc()
        m.child(m.predict_seconds, ref.name, ref.version, "shadow").observe(seconds)
        m.child(m.prediction_rows, ref.name, ref.version, "shadow").inc(len(predictions))
        if self.log is not None:
            self.log.refs.add(ref)
            self.log.submit(
                make_entry(
                    started,
                    request_id,
                    ref.name,
                    ref.version,
                    "shadow",
                    round(seconds * 1000, 3),
                    log_array,
                    columns if log_array is not None else None,
                    log_frame,
                    predictions,
                ),
                len(predictions),
            )

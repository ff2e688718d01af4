"""The scoring app: one factory, :func:`create_app`, and no module-level state.

Everything a request needs hangs off ``app.state.opsloop`` (a :class:`ServingState`): the
project, the :class:`ModelHolder` (swappable), the metrics registry, the prediction log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from opsloop.records import ModelVersionRef, new_id
from opsloop_fastapi import __version__
from opsloop_fastapi.metrics import MetricsMiddleware, ServerMetrics
from opsloop_fastapi.predlog import PredictionLog, model_dir
from opsloop_fastapi.schema import InputError
from opsloop_fastapi.scoring import PredictFailed, PredictRefused, Scorer
from opsloop_fastapi.served import ModelHolder, ServedModel
from opsloop_fastapi.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.project import Project

logger = logging.getLogger("opsloop_fastapi.app")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Reply = tuple[int, dict[str, Any]]
Headers = dict[str, str]


class PredictResponse(BaseModel):
    """The /v1/models/{name}/predict response."""

    request_id: str
    model: str
    version: str
    predictions: list[Any]
    probabilities: list[list[float]] | None = None


class InvocationsResponse(BaseModel):
    """MLflow's /invocations response."""

    predictions: list[Any]


@dataclass
class ServingState:
    """What the routes share: set once by :func:`create_app`, read by every request."""

    project: Project
    settings: Settings
    holder: ModelHolder
    metrics: ServerMetrics
    scorer: Scorer
    prediction_log: PredictionLog | None
    ready: bool = False

    def start(self) -> None:
        if self.prediction_log is not None:
            self.prediction_log.start()
        self.ready = True

    def stop(self) -> None:
        """Stop taking traffic as ready, then flush and stop the prediction log."""
        self.ready = False
        if self.prediction_log is not None:
            self.prediction_log.close(timeout=self.settings.shutdown_timeout)


def create_app(
    project: Project, ref: ModelVersionRef, model: Any, *, settings: Settings | None = None
) -> FastAPI:
    """Build the scoring app for ``model`` (loaded from ``ref``); run it under any ASGI server.

    The prediction-log writer starts and stops with the app's lifespan.
    """
    settings = settings or load_settings(project)
    served = ServedModel.build(ref, model)
    metrics = ServerMetrics()
    metrics.set_model(ref.name, ref.version, ref.uri)
    log = None
    if settings.log_predictions:
        if settings.log_format == "parquet":
            _require_pyarrow()
        log = PredictionLog(
            model_dir(project.home / "predictions", ref.name),
            fmt=settings.log_format,
            queue_size=settings.log_queue_size,
            batch_rows=settings.log_batch_rows,
            flush_seconds=settings.log_flush_seconds,
            on_dropped=metrics.log_dropped_rows.labels(model=ref.name).inc,
            on_written=metrics.log_written_rows.labels(model=ref.name).inc,
        )
        metrics.watch_queue(log.depth)
    holder = ModelHolder(served)
    state = ServingState(
        project=project,
        settings=settings,
        holder=holder,
        metrics=metrics,
        scorer=Scorer(project.hook, metrics, log),
        prediction_log=log,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(
        title=f"opsloop scoring: {ref.name}",
        version=__version__,
        description=f"Online scoring for model {ref.name} version {ref.version} ({ref.uri}).",
        lifespan=lifespan,
    )
    app.state.opsloop = state
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_routes(app, state)
    _install_openapi(app, holder)
    holder.on_swap(lambda old, new: _on_swap(app, metrics, new))
    return app


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        from opsloop.errors import ConfigError

        raise ConfigError(
            "plugin.fastapi.log_format = 'parquet' needs pyarrow: "
            "pip install 'opsloop-fastapi[parquet]', or use log_format = 'jsonl'"
        ) from None


def _on_swap(app: FastAPI, metrics: ServerMetrics, new: ServedModel) -> None:
    metrics.set_model(new.ref.name, new.ref.version, new.ref.uri)
    app.openapi_schema = None  # rebuilt from the new signature on next request


# ---------------------------------------------------------------------- routes
def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else new_id("prd")


def _predict_error(status: int, message: str, errors: list[Any] | None = None) -> Reply:
    body: dict[str, Any] = {"detail": message}
    if errors is not None:
        body["errors"] = errors
        body["fields"] = sorted({str(e["field"]) for e in errors if e.get("field") is not None})
    return status, body


def _mlflow_error(status: int, message: str, errors: list[Any] | None = None) -> Reply:
    body: dict[str, Any] = {"error_code": "BAD_REQUEST", "message": message}
    if status >= 500:
        body["error_code"] = "INTERNAL_ERROR"
    elif status == 403:
        body["error_code"] = "PERMISSION_DENIED"
    if errors is not None:
        body["errors"] = errors
    return status, body


def _count_error(state: ServingState, served: ServedModel, kind: str) -> None:
    state.metrics.prediction_errors.labels(
        model=served.ref.name, version=served.ref.version, kind=kind
    ).inc()


def _predict_sync(
    state: ServingState, served: ServedModel, body: bytes, request_id: str, headers: Headers
) -> Reply:
    """Parse, validate and score one /v1 request (in a worker thread, off the event loop)."""
    try:
        frame = _frame(served.schema.frame_from_predict_body, _json(body))
    except InputError as exc:
        _count_error(state, served, "input")
        return _predict_error(422, exc.message, exc.errors)
    try:
        result = state.scorer.score(
            served, frame, request_id=request_id, headers=headers, with_proba=True
        )
    except (PredictRefused, PredictFailed) as exc:
        return _predict_error(exc.status_code, str(exc))
    content: dict[str, Any] = {
        "request_id": result.request_id,
        "model": served.ref.name,
        "version": served.ref.version,
        "predictions": result.predictions,
    }
    if result.probabilities is not None:
        content["probabilities"] = result.probabilities
    return 200, content


def _invocations_sync(
    state: ServingState, served: ServedModel, body: bytes, request_id: str, headers: Headers
) -> Reply:
    """Parse, validate and score one MLflow /invocations request (in a worker thread)."""
    content_type = headers.get("content-type", "application/json")
    mime = content_type.split(";")[0].strip().lower()
    try:
        frame = _frame(_parse_invocation, served, body, mime)
    except _Unsupported as exc:
        _count_error(state, served, "input")
        return _mlflow_error(415, str(exc))
    except InputError as exc:
        _count_error(state, served, "input")
        return _mlflow_error(400, exc.message, exc.errors)
    try:
        result = state.scorer.score(served, frame, request_id=request_id, headers=headers)
    except (PredictRefused, PredictFailed) as exc:
        return _mlflow_error(exc.status_code, str(exc))
    return 200, {"predictions": result.predictions}


def _add_routes(app: FastAPI, state: ServingState) -> None:
    async def reply(request: Request, served: ServedModel, handler: Any) -> Response:
        request_id = _request_id(request)
        body = await request.body()
        status, content = await run_in_threadpool(
            handler, state, served, body, request_id, dict(request.headers)
        )
        return JSONResponse(content, status_code=status, headers={"x-request-id": request_id})

    @app.post(
        "/v1/models/{name}/predict",
        response_model=PredictResponse,
        tags=["scoring"],
        summary="Score rows with the served model",
        openapi_extra={"requestBody": _body_ref("PredictRequest")},
        responses={
            404: {"description": "No such model on this server"},
            422: {"description": "Invalid input; `errors` and `fields` name each bad field"},
        },
    )
    async def predict(name: str, request: Request) -> Response:
        served = state.holder.current  # read once: a swap never splits a request
        if name != served.ref.name:
            _count_error(state, served, "not_found")
            status, content = _predict_error(
                404, f"model '{name}' is not served here; this server serves '{served.ref.name}'"
            )
            return JSONResponse(content, status_code=status)
        return await reply(request, served, _predict_sync)

    @app.post(
        "/invocations",
        response_model=InvocationsResponse,
        tags=["scoring"],
        summary="MLflow-compatible scoring (dataframe_split, dataframe_records, instances, "
        "inputs; JSON, CSV or Parquet)",
        openapi_extra={"requestBody": _body_ref("InvocationsRequest")},
        responses={400: {"description": "Invalid input (MLflow error shape)"}},
    )
    async def invocations(request: Request) -> Response:
        return await reply(request, state.holder.current, _invocations_sync)

    @app.get("/health", tags=["ops"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ping", tags=["ops"], include_in_schema=False)
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"], summary="Readiness: a model is loaded and serving")
    async def ready() -> Response:
        served = state.holder.current
        body = {"ready": state.ready, "model": served.ref.name, "version": served.ref.version}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/version", tags=["ops"], summary="The served model version")
    async def version() -> dict[str, Any]:
        return {**state.holder.current.describe(), "server": f"opsloop-fastapi {__version__}"}

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (text format)")
    async def metrics() -> Response:
        data, content_type = state.metrics.render()
        return Response(content=data, media_type=content_type)


def _frame(parse: Any, *args: Any) -> pd.DataFrame:
    """Run a schema parser; an unexpected failure on odd input is still the input's fault."""
    try:
        return parse(*args)
    except (InputError, _Unsupported):
        raise
    except Exception as exc:  # noqa: BLE001 - bad input must never become a 500
        logger.warning("input parser raised on odd input: %r", exc)
        raise InputError.body(f"could not read the input: {exc}", "input_invalid") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InputError.body(f"body is not valid JSON: {exc}", "json_invalid") from None


class _Unsupported(Exception):
    """A content type /invocations does not read."""


def _parse_invocation(served: ServedModel, body: bytes, mime: str) -> pd.DataFrame:
    if mime in ("application/json", ""):
        return served.schema.frame_from_mlflow(_json(body))
    if mime in ("text/csv", "application/vnd.apache.parquet"):
        import io

        import pandas as pd

        try:
            if mime == "text/csv":
                frame = pd.read_csv(io.StringIO(body.decode("utf-8")))
            else:
                frame = pd.read_parquet(io.BytesIO(body))
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's input
            kind = "CSV" if mime == "text/csv" else "Parquet"
            raise InputError.body(
                f"body is not a valid {kind} table: {exc}", "table_invalid"
            ) from None
        return served.schema.frame_from_frame(frame)
    raise _Unsupported(
        f"unsupported content type '{mime}'; send application/json, text/csv or "
        "application/vnd.apache.parquet"
    )


# ---------------------------------------------------------------------- openapi
def _body_ref(model: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
    }


def _install_openapi(app: FastAPI, holder: ModelHolder) -> None:
    """Add the request models built from the current signature to the OpenAPI document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        served = holder.current
        template = "#/components/schemas/{model}"
        for alias, model in (
            ("PredictRequest", served.schema.request_model()),
            ("InvocationsRequest", served.schema.invocations_model()),
        ):
            body = model.model_json_schema(ref_template=template)
            components.update(body.pop("$defs", {}))
            components[alias] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

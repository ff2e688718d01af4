"""The scoring app: one factory, :func:`create_app`, and no module-level state.

Everything a request needs hangs off ``app.state.opsloop`` (a
:class:`~opsloop_fastapi.state.ServingState`): the project, the :class:`ModelHolder`
(swappable), the metrics, the prediction and feedback logs, the limiter, the model threads
and the alias follower. The scoring routes are served by
:class:`~opsloop_fastapi.front.Front` (plain ASGI, the hot path); FastAPI serves the rest
and the OpenAPI document, whose request schemas list the served signature's columns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
)

from opsloop.errors import OpsloopError
from opsloop.records import ModelVersionRef
from opsloop_fastapi import __version__
from opsloop_fastapi.afterpredict import AfterPredict
from opsloop_fastapi.decode import DecodeLimits
from opsloop_fastapi.follow import Follower, canary_share
from opsloop_fastapi.front import Front, Router
from opsloop_fastapi.metrics import ServerMetrics
from opsloop_fastapi.pglog import store_for
from opsloop_fastapi.predlog import FeedbackEntry, FeedbackLog, PredictionLog, model_dir
from opsloop_fastapi.schema import InputError
from opsloop_fastapi.scoring import Scorer, ShadowRunner, loads
from opsloop_fastapi.served import ModelHolder, ServedModel
from opsloop_fastapi.settings import Settings
from opsloop_fastapi.state import ServingState
from opsloop_fastapi.threadname import name_native_thread

if TYPE_CHECKING:
    from opsloop.project import Project

logger = logging.getLogger("opsloop_fastapi.app")


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


_Label = (
    Annotated[bool, Strict()]
    | Annotated[int, Strict()]
    | Annotated[float, Strict(), AllowInfNan(False)]
    | Annotated[str, Strict(), Field(max_length=1000)]
)
_RequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]


class FeedbackItem(BaseModel):
    """The true label of one row of an earlier prediction."""

    model_config = ConfigDict(extra="forbid")

    request_id: _RequestId = Field(description="The request_id the prediction answered with.")
    row: Annotated[int, Strict(), Field(ge=0, le=10_000_000)] = Field(
        default=0, description="Row of that request (0 for one-row requests)."
    )
    label: _Label = Field(description="The ground truth: a number, a string or a boolean.")


class FeedbackBatch(BaseModel):
    """Several labels at once."""

    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackItem] = Field(min_length=1, max_length=10_000)


class FeedbackResponse(BaseModel):
    accepted: int
    dropped: int


class PromoteRequest(BaseModel):
    """Move an alias (default: champion) to a version, through the registry's gates."""

    model_config = ConfigDict(extra="forbid")

    version: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")]
    alias: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")] = "champion"
    force_reason: Annotated[str, Field(max_length=1000)] = ""


class RollbackRequest(BaseModel):
    """Move an alias back to the version it named before."""

    model_config = ConfigDict(extra="forbid")

    alias: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")] = "champion"
    reason: Annotated[str, Field(max_length=1000)] = ""


def create_app(
    project: Project,
    ref: ModelVersionRef,
    model: Any,
    *,
    settings: Settings | None = None,
    alias: str | None = None,
    challenger: ServedModel | None = None,
    digest: str | None = None,
) -> FastAPI:
    """Build the scoring app for ``model`` (loaded from ``ref``); run it under any ASGI server.

    ``alias`` is the alias this app follows (default: "champion" when ``ref`` has it, else
    none: the version is pinned). ``challenger`` is served to the canary share and to the
    shadow. The logs, the shadow and the alias poller start and stop with the lifespan.
    """
    settings = settings or project.settings("fastapi")
    if alias is None and "champion" in ref.aliases:
        alias = "champion"
    served = ServedModel.build(
        ref, model, alias=alias or "", digest=digest, compile_models=settings.compile_models
    )
    metrics = ServerMetrics()
    metrics.add_plugin_collectors(project)
    log = None
    if settings.log_predictions:
        log = PredictionLog(
            model_dir(project.home / "predictions", ref.name),
            fmt=settings.log_format,
            compression=settings.log_compression,
            queue_size=settings.log_queue_size,
            batch_rows=settings.log_batch_rows,
            flush_seconds=settings.log_flush_seconds,
            rotate_seconds=settings.log_rotate_seconds,
            on_dropped=metrics.log_dropped_rows.labels(model=ref.name).inc,
            on_written=metrics.log_written_rows.labels(model=ref.name).inc,
            store=store_for(settings, "predictions", project.config.source),
        )
        metrics.watch_queue(log.depth)
    feedback = FeedbackLog(
        model_dir(project.home / "feedback", ref.name),
        fmt=settings.log_format,
        compression=settings.log_compression,
        queue_size=settings.log_queue_size,
        batch_rows=settings.log_batch_rows,
        flush_seconds=settings.log_flush_seconds,
        rotate_seconds=settings.log_rotate_seconds,
        on_dropped=metrics.feedback_rows.labels(model=ref.name, outcome="dropped").inc,
        on_written=metrics.feedback_rows.labels(model=ref.name, outcome="written").inc,
        store=store_for(settings, "feedback", project.config.source),
    )
    wants_challenger = settings.canary_share > 0 or settings.shadow
    holder = ModelHolder(served, challenger if wants_challenger else None)
    metrics.set_models(holder.slots)
    shadow = ShadowRunner(metrics, log) if settings.shadow else None
    after = AfterPredict(project.plugins, metrics, log, size=settings.log_queue_size)
    from opsloop_fastapi.limits import make_limiter

    state = ServingState(
        project=project,
        settings=settings,
        holder=holder,
        metrics=metrics,
        scorer=Scorer(
            project.hook,
            metrics,
            log,
            shadow=shadow,
            after=after,
            limits=DecodeLimits(settings.max_rows, settings.max_decoded_bytes),
        ),
        prediction_log=log,
        feedback_log=feedback,
        router=Router(
            canary_share(project, challenger.ref, settings.canary_share)
            if challenger is not None and settings.canary_share > 0
            else settings.canary_share
        ),
        limiter=make_limiter(settings, ref.name),
        pool=ThreadPoolExecutor(
            settings.model_threads,
            thread_name_prefix="opsloop-model",
            initializer=name_native_thread,
        ),
        shadow=shadow,
        admin_token=settings.token(),
    )
    state.follower = Follower(
        state,
        name=ref.name,
        alias=alias,
        challenger_alias=settings.challenger_alias if wants_challenger else None,
        poll_seconds=settings.poll_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)
            if state.limiter is not None:
                await state.limiter.close()

    app = ScoringApp(
        title=f"opsloop scoring: {ref.name}",
        version=__version__,
        description=f"Online scoring for model {ref.name} version {ref.version} ({ref.uri}).",
        lifespan=lifespan,
    )
    app.state.opsloop = state
    front = Front(app.handle, state)
    app.front = front
    _add_routes(app, state, front)
    _install_openapi(app, holder)
    holder.on_swap(lambda old, new: _on_swap(app))
    return app


class ScoringApp(FastAPI):
    """FastAPI with :class:`Front` in front of everything: scoring skips the middleware stack.

    The scoring routes are answered by the front before FastAPI's own layers (error and
    telemetry middleware, router, dependencies); every other request goes through them.
    """

    front: Front | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        front = self.front
        if front is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await front(scope, receive, send)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """The FastAPI app itself (the front forwards here)."""
        await super().__call__(scope, receive, send)


def _on_swap(app: FastAPI) -> None:
    app.openapi_schema = None  # rebuilt from the new signature on next request


# ---------------------------------------------------------------------- routes
class _Delegate(Response):
    """A response that hands the request to the front (when the app is mounted elsewhere)."""

    def __init__(self, front: Front, kind: str, name: str | None) -> None:
        self.front = front
        self.kind = kind
        self.name = name
        self.background = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.front.score(scope, receive, send, self.kind, self.name)


def _json_error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    return JSONResponse({"detail": message, **extra}, status_code=status, headers=headers)


_UNION_MESSAGES = {"label": "must be a number, a string or a boolean"}


def _field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors as ours: the field is the first name after the last list index.

    A union (``label``) reports one error per member; they become one error at the field.
    """
    out: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False, include_input=False)[:100]:
        loc = list(err["loc"])
        last_index = max((i for i, p in enumerate(loc) if isinstance(p, int)), default=-1)
        names = [p for p in loc[last_index + 1 :] if isinstance(p, str)]
        field_name = names[0] if names else None
        if field_name is not None:
            loc = loc[: loc.index(field_name, last_index + 1) + 1]
        key = tuple(loc)
        if key in seen:
            continue
        seen.add(key)
        union = len(names) > 1 and field_name in _UNION_MESSAGES
        msg = _UNION_MESSAGES[field_name] if union else err["msg"]  # type: ignore[index]
        out.append({"loc": loc, "field": field_name, "msg": msg, "type": err["type"]})
    return out


def _invalid(exc: ValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    shown = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:10])
    noun = "error" if len(errors) == 1 else "errors"
    return _json_error(
        422,
        f"invalid input, {len(errors)} {noun}: {shown}",
        errors=errors,
        fields=sorted({e["field"] for e in errors if e["field"]}),
    )


def _add_routes(app: FastAPI, state: ServingState, front: Front) -> None:
    admin = _Admin(state)

    @app.post(
        "/v1/models/{name}/predict",
        response_model=PredictResponse,
        tags=["scoring"],
        summary="Score rows with the served model",
        openapi_extra={"requestBody": _body_ref("PredictRequest")},
        responses={
            404: {"description": "No such model on this server"},
            408: {"description": "The body did not arrive within body_timeout_seconds"},
            413: {
                "description": "Body larger than max_body_bytes, or over max_rows or "
                "max_decoded_bytes once decoded"
            },
            415: {"description": "A Content-Encoding other than identity"},
            422: {"description": "Invalid input; `errors` and `fields` name each bad field"},
            429: {"description": "Rate limit exceeded; see Retry-After"},
            504: {"description": "The prediction took longer than timeout_seconds"},
        },
    )
    async def predict(name: str) -> Response:
        return _Delegate(front, "v1", name)

    @app.post(
        "/invocations",
        response_model=InvocationsResponse,
        tags=["scoring"],
        summary="MLflow-compatible scoring (dataframe_split, dataframe_records, instances, "
        "inputs; JSON, CSV or Parquet)",
        openapi_extra={"requestBody": _body_ref("InvocationsRequest")},
        responses={
            400: {"description": "Invalid input (MLflow error shape)"},
            408: {"description": "The body did not arrive within body_timeout_seconds"},
            413: {
                "description": "Body larger than max_body_bytes, or over max_rows or "
                "max_decoded_bytes once decoded (checked before decoding)"
            },
            415: {"description": "Unsupported content type or Content-Encoding"},
            429: {"description": "Rate limit exceeded; see Retry-After"},
            504: {"description": "The prediction took longer than timeout_seconds"},
        },
    )
    async def invocations() -> Response:
        return _Delegate(front, "mlflow", None)

    @app.post(
        "/v1/feedback",
        response_model=FeedbackResponse,
        status_code=202,
        tags=["scoring"],
        summary="Attach ground-truth labels to earlier predictions by request id",
        openapi_extra={"requestBody": _body_ref("FeedbackRequest")},
        responses={422: {"description": "Invalid feedback; `errors` names each bad field"}},
    )
    async def feedback(request: Request) -> Response:
        try:
            payload = loads(await request.body())
        except InputError as exc:
            return _json_error(422, exc.message)
        try:
            if isinstance(payload, dict) and "items" in payload:
                items = FeedbackBatch.model_validate(payload).items
            else:
                items = [FeedbackItem.model_validate(payload)]
        except ValidationError as exc:
            return _invalid(exc)
        import time

        now = time.time()
        name = state.holder.current.ref.name
        accepted = 0
        for item in items:
            entry = FeedbackEntry(now, item.request_id, item.row, item.label, name)
            accepted += state.feedback_log.submit(entry)
        return JSONResponse(
            {"accepted": accepted, "dropped": len(items) - accepted}, status_code=202
        )

    @app.get("/health", tags=["ops"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ping", tags=["ops"], include_in_schema=False)
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["ops"],
        summary="Readiness: a model is loaded, integrity-checked and serving",
        responses={503: {"description": "Starting up or shutting down"}},
    )
    async def ready() -> Response:
        served = state.holder.current
        body = {
            "ready": state.ready,
            "model": served.ref.name,
            "version": served.ref.version,
            "artifact_digest": served.digest,
        }
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/version", tags=["ops"], summary="The served model versions")
    async def version() -> dict[str, Any]:
        slots = state.holder.slots
        return {
            **slots.champion.describe(),
            "challenger": slots.challenger.describe() if slots.challenger else None,
            "canary_share": state.router.share,
            "shadow": state.settings.shadow,
            "server": f"opsloop-fastapi {__version__}",
            "pid": os.getpid(),
        }

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (text format)")
    async def metrics() -> Response:
        data, content_type = state.metrics.render()
        return Response(content=data, media_type=content_type)

    admin_responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "No bearer token"},
        403: {"description": "Wrong token"},
        404: {"description": "Admin is off: no token is configured"},
        429: {"description": "Too many failed attempts from this client; see Retry-After"},
        409: {"description": "The registry refused, or the new version did not load"},
    }
    security: list[dict[str, list[str]]] = [{"AdminToken": []}]

    @app.post(
        "/admin/reload",
        tags=["admin"],
        summary="Load whatever the followed aliases name now, and swap it in",
        responses=admin_responses,
        openapi_extra={"security": security},
    )
    async def reload(request: Request) -> Response:
        return await admin.run(request, None, admin.reload)

    @app.post(
        "/admin/promote",
        tags=["admin"],
        summary="Promote a version to an alias (registry gates apply), then reload",
        responses=admin_responses,
        openapi_extra={"security": security, "requestBody": _body_ref("PromoteRequest")},
    )
    async def promote(request: Request) -> Response:
        return await admin.run(request, PromoteRequest, admin.promote)

    @app.post(
        "/admin/rollback",
        tags=["admin"],
        summary="Move an alias back to its previous version, then reload",
        responses=admin_responses,
        openapi_extra={"security": security, "requestBody": _body_ref("RollbackRequest")},
    )
    async def rollback(request: Request) -> Response:
        return await admin.run(request, RollbackRequest, admin.rollback)


# ---------------------------------------------------------------------- admin
def token_id(token: str) -> str:
    """A name for a token in the audit log that does not reveal it."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class _Admin:
    """Bearer-token admin actions: reload, promote, rollback; each audited.

    A refused attempt (401, 403) is audited with the path and the client address, never
    the token presented; a client with ``admin_max_failures`` of them within
    ``admin_failure_window_seconds`` gets 429 (with Retry-After) until the window moves on.
    """

    def __init__(self, state: ServingState) -> None:
        from opsloop_fastapi.limits import FailureWindow

        self.state = state
        settings = state.settings
        self.failures = FailureWindow(
            settings.admin_max_failures, settings.admin_failure_window_seconds
        )

    def authorize(self, request: Request) -> str | Response:
        """The audit actor for this request, or the error response."""
        token = self.state.admin_token
        if not token:
            return _json_error(
                404,
                "admin endpoints are off: set plugin.fastapi.admin_token or "
                "$OPSLOOP_ADMIN_TOKEN to turn them on",
            )
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _json_error(
                401,
                "admin endpoints need 'Authorization: Bearer <token>'",
                headers={"www-authenticate": "Bearer"},
            )
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            return _json_error(403, "the bearer token is not valid for this server")
        return "api:" + token_id(token)

    async def run(self, request: Request, model: type[BaseModel] | None, action: Any) -> Response:
        import time

        client = request.client.host if request.client else "unknown"
        now = time.monotonic()
        wait = self.failures.locked(client, now)
        if wait > 0:
            self.state.metrics.admin_refused.labels(status="429").inc()
            return self._locked_out(wait)
        actor = self.authorize(request)
        if isinstance(actor, Response):
            if actor.status_code in (401, 403):
                self.state.metrics.admin_refused.labels(status=str(actor.status_code)).inc()
                await self._refused(request, client, actor.status_code, now)
            return actor
        self.failures.clear(client)
        body: BaseModel | None = None
        if model is not None:
            raw = await request.body()
            try:
                payload = json.loads(raw) if raw.strip() else {}
            except (ValueError, RecursionError) as exc:
                return _json_error(422, f"body is not valid JSON: {exc}")
            try:
                body = TypeAdapter(model).validate_python(payload)
            except ValidationError as exc:
                return _invalid(exc)
        try:
            result = await run_in_threadpool(action, actor, body)
        except OpsloopError as exc:
            return _json_error(409, str(exc))
        except Exception as exc:
            logger.exception("admin action failed")
            return _json_error(409, f"{type(exc).__name__}: {exc}")
        return JSONResponse(result)

    def _locked_out(self, wait: float) -> Response:
        from opsloop_fastapi.limits import retry_after

        after = retry_after(wait)
        return _json_error(
            429,
            f"too many failed admin attempts from this client: {self.failures.limit} within "
            f"{self.failures.window:g} s (plugin.fastapi.admin_max_failures, "
            f"plugin.fastapi.admin_failure_window_seconds); retry after {after} s",
            headers={"retry-after": after},
        )

    async def _refused(self, request: Request, client: str, status: int, now: float) -> None:
        """Count the failure and audit it (and the lock-out it may start); never the token."""
        locks = self.failures.fail(client, now)
        detail = {
            "path": request.url.path,
            "client": client,
            "status": status,
            "reason": "no bearer token" if status == 401 else "wrong token",
        }
        entries = [("serve.admin.denied", detail)]
        if locks:
            entries.append(
                (
                    "serve.admin.locked",
                    {
                        "client": client,
                        "failures": self.failures.limit,
                        "window_seconds": self.failures.window,
                    },
                )
            )
        try:
            for action, what in entries:
                await run_in_threadpool(self._audit, action, f"client:{client}", what)
        except Exception:  # the refusal stands even when the audit log cannot be written
            logger.exception("could not audit a refused admin attempt from %s", client)

    def _check(self, actor: str) -> dict[str, Any]:
        follower = self.state.follower
        if follower is None or not (follower.alias or follower.challenger_alias):
            return {}
        return follower.check(actor=actor)

    def reload(self, actor: str, _body: Any) -> dict[str, Any]:
        served = self._check(actor)
        self._audit("serve.admin.reload", actor, {"served": served})
        return {"served": served}

    def promote(self, actor: str, body: PromoteRequest) -> dict[str, Any]:
        from opsloop import registry

        project = self.state.project
        name = self.state.holder.current.ref.name
        try:
            promote = registry.promote  # type: ignore[attr-defined]
        except AttributeError:
            raise OpsloopError(
                "this opsloop core has no registry.promote; upgrade opsloop"
            ) from None
        self._audit(
            "serve.admin.promote",
            actor,
            {"version": body.version, "alias": body.alias, "forced": bool(body.force_reason)},
        )
        ref = promote(project, name, body.version, alias=body.alias, force_reason=body.force_reason)
        return {"alias": body.alias, "version": ref.version, "served": self._check(actor)}

    def rollback(self, actor: str, body: RollbackRequest) -> dict[str, Any]:
        from opsloop import registry

        project = self.state.project
        name = self.state.holder.current.ref.name
        try:
            rollback = registry.rollback  # type: ignore[attr-defined]
        except AttributeError:
            raise OpsloopError(
                "this opsloop core has no registry.rollback; upgrade opsloop"
            ) from None
        self._audit("serve.admin.rollback", actor, {"alias": body.alias, "reason": body.reason})
        if body.reason:
            ref = rollback(project, name, alias=body.alias, reason=body.reason)
        else:
            ref = rollback(project, name, alias=body.alias)
        return {"alias": body.alias, "version": ref.version, "served": self._check(actor)}

    def _audit(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        name = self.state.holder.current.ref.name
        self.state.project.audit.append(
            action, name, actor=actor, detail={"plugin": "fastapi", **detail}
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
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        served = holder.current
        template = "#/components/schemas/{model}"
        feedback_request: Any = FeedbackItem | FeedbackBatch
        for alias, model in (
            ("PredictRequest", served.schema.request_model()),
            ("InvocationsRequest", served.schema.invocations_model()),
            ("FeedbackRequest", feedback_request),
            ("PromoteRequest", PromoteRequest),
            ("RollbackRequest", RollbackRequest),
        ):
            body = TypeAdapter(model).json_schema(ref_template=template)
            schemas.update(body.pop("$defs", {}))
            schemas[alias] = body
        components["securitySchemes"] = {
            "AdminToken": {"type": "http", "scheme": "bearer", "description": "admin_token"}
        }
        predict = schema["paths"].get("/v1/models/{name}/predict", {}).get("post", {})
        for parameter in predict.get("parameters", []):
            if parameter.get("name") == "name":  # this server serves one model
                parameter["schema"] = {"type": "string", "enum": [served.ref.name]}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

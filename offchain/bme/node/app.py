"""The node's HTTP API: OpenAI's `/v1/chat/completions` and `/v1/models`, plus health, readiness and metrics.

A chat completion goes through, in order: the body size limit (413), the relayer's credential (401), JSON
and field validation (400), the model id (404), the `max_tokens` and prompt limits (400), admission to a
completion slot (503 with Retry-After when the queue is full), then the backend, within the request
timeout (504); a model runtime that crashes under a request answers it with a 503 naming the crash.
Nothing before admission runs the model. Every error is an OpenAI-style error object (`ErrorBody`); every
body is a model of `bme.node.schemas`, which the OpenAPI schema (`bme operator openapi`) publishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bme.node.auth import RelayerVerifier
from bme.node.backends import Backend, Finished, StreamEvent, TextDelta
from bme.node.errors import InvalidRequest, ModelNotFound, NodeError, PayloadTooLarge, PromptTooLarge
from bme.node.journal import JobJournal
from bme.node.limits import AdmissionGate
from bme.node.metrics import CONTENT_TYPE, NodeMetrics
from bme.node.schemas import (
    SSE_DONE,
    ChatCompletion,
    ChatCompletionRequest,
    ChunkDelta,
    ChunkWriter,
    ErrorBody,
    ErrorDetail,
    ModelCard,
    ModelList,
    NodeHealth,
    NodeReadiness,
    completion_body,
    new_completion_id,
    parse_chat_request,
    sse,
)
from bme.node.settings import NodeSettings

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
_ENDPOINTS = {CHAT_PATH, "/v1/models", "/healthz", "/readyz", "/metrics"}
#: What each error status of the chat route means (every error body is an `ErrorBody`).
_CHAT_ERRORS = {
    400: "a malformed request, an unsupported field, or a limit broken (max_tokens, prompt size)",
    401: "no valid credential of the trusted relayer",
    404: "a model this node does not serve",
    413: "the body is larger than the node accepts",
    500: "an unexpected error in the node",
    502: "the upstream server failed or was unreachable",
    503: "every completion slot is busy and the queue is full, or the model runtime is down (Retry-After)",
    504: "the completion did not finish within the node's request timeout",
}
_STREAM_FORMAT = (
    "With `stream: true`: server-sent events, each `data:` a JSON `chat.completion.chunk` (id, object, "
    "created, model, choices with a `delta`, and `usage` when `stream_options.include_usage` asks for it), "
    "then `data: [DONE]`; an error after the first chunk is an event holding an error body."
)


def _errors(reasons: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that answers `ErrorBody` with each status of `reasons`."""
    return {status: {"model": ErrorBody, "description": reason} for status, reason in reasons.items()}


def create_app(
    settings: NodeSettings,
    backend: Backend,
    *,
    verifier: RelayerVerifier | None = None,
    metrics: NodeMetrics | None = None,
    owns_backend: bool = False,
    journal: JobJournal | None = None,
) -> FastAPI:
    """The node's ASGI app around `backend`.

    With `owns_backend`, the app closes the backend when the server shuts down, on the server's own event
    loop (an upstream backend's connections belong to it); otherwise the caller closes it.
    """
    verifier = verifier or RelayerVerifier(
        trusted_relayer=settings.trusted_relayer,
        operator=settings.operator_address,
        max_skew_s=settings.auth_max_skew_s,
        token_max_ttl_s=settings.token_max_ttl_s,
    )
    metrics = metrics or NodeMetrics()
    journal = journal or JobJournal(settings.job_journal)
    gate = AdmissionGate(
        slots=settings.max_concurrency, max_queue=settings.max_queue, retry_after_s=settings.retry_after_s
    )
    metrics.watch_gate(lambda: gate.waiting, lambda: gate.active)
    metrics.watch_backend(lambda: float(backend.health().ready), lambda: backend.health().restarts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            journal.close()
            if owns_backend:
                await backend.aclose()

    app = FastAPI(
        title="BME operator node", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.backend = backend
    app.state.gate = gate
    app.state.journal = journal
    app.state.metrics = metrics
    app.add_middleware(_RequestMetrics, metrics=metrics)
    _install_error_handlers(app, metrics)

    @app.get(
        "/healthz",
        response_description="The node answers.",
        response_model_exclude_none=True,
        responses={503: {"model": NodeHealth, "description": "The node gave up and is about to exit."}},
    )
    async def healthz(response: Response) -> NodeHealth:
        """The node's state. 200 while the process can answer (also while its model runtime restarts, with
        `status` "restarting" and the `reason`); 503 once it has given up and is about to exit."""
        health = backend.health()
        response.status_code = 503 if health.failed else 200
        return NodeHealth(
            status="ok" if health.ready else "failed" if health.failed else "restarting",
            backend=backend.kind,
            model=backend.model_id,
            running=gate.active,
            queued=gate.waiting,
            slots=gate.slots,
            max_queue=gate.max_queue,
            jobs_executed=journal.executed,
            jobs_replayed=journal.replayed,
            reason=health.reason,
            model_restarts=health.restarts or None,
        )

    @app.get(
        "/readyz",
        response_description="Ready.",
        response_model_exclude_none=True,
        responses={503: {"model": NodeReadiness, "description": "Not ready: the model runtime is down."}},
    )
    async def readyz(response: Response) -> NodeReadiness:
        """200 when a completion can start now; 503 with the reason while the model runtime is down."""
        health = backend.health()
        response.status_code = 200 if health.ready else 503
        return NodeReadiness(ready=health.ready, reason=health.reason)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text exposition format 0.0.4."}},
    )
    async def prometheus_metrics() -> PlainTextResponse:
        """The node's Prometheus metrics."""
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    def model_card() -> ModelCard:
        return ModelCard(id=backend.model_id, object="model", created=0, owned_by="bme-node")

    @app.get("/v1/models", response_description="The model this node serves.")
    async def list_models() -> ModelList:
        """The models this node serves: one."""
        return ModelList(object="list", data=[model_card()])

    @app.get(
        "/v1/models/{model_id:path}",
        response_description="The model.",
        responses=_errors({404: "a model this node does not serve"}),
    )
    async def get_model(model_id: str) -> ModelCard:
        """The model this node serves, by its id."""
        if model_id != backend.model_id:
            raise ModelNotFound(f"The model `{model_id}` does not exist on this node.", param="model")
        return model_card()

    @app.post(
        CHAT_PATH,
        response_model=ChatCompletion,
        responses={
            200: {
                "description": "The completion: a JSON object, or with `stream: true` server-sent events.",
                "content": {
                    "text/event-stream": {"schema": {"type": "string", "description": _STREAM_FORMAT}}
                },
                "headers": {
                    "X-BME-Replayed": {
                        "description": "`true` when a paid job asked again is answered from the job journal.",
                        "schema": {"type": "string"},
                    }
                },
            },
            **_errors(_CHAT_ERRORS),
        },
    )
    async def chat_completions(request: Request, response: Response) -> dict[str, Any] | Response:
        """OpenAI's chat completion, for the trusted relayer (its credential in the headers). The body is
        OpenAI's request (model, messages, max_tokens, temperature, top_p, stop, seed, stream...); a paid
        job names itself in `user` and runs once: asked again with the same body, the first answer is
        sent again."""
        received_at = time.time()
        started = time.monotonic()
        deadline = started + settings.request_timeout_s
        body = await _read_body(request, settings.max_body_bytes)
        verifier.verify(request.method, _request_target(request.scope), request.headers, body)
        chat = parse_chat_request(body)
        if chat.model != backend.model_id:
            raise ModelNotFound(
                f"The model `{chat.model}` does not exist on this node; it serves `{backend.model_id}`.",
                param="model",
            )
        params = chat.to_params()
        if params.max_tokens is not None and params.max_tokens > settings.max_tokens_limit:
            raise InvalidRequest(
                f"max_tokens is {params.max_tokens}; this node allows at most {settings.max_tokens_limit}.",
                param="max_tokens",
            )
        if params.prompt_chars() > settings.max_prompt_chars:
            raise PromptTooLarge(
                f"The messages hold {params.prompt_chars()} characters; this node accepts at most "
                f"{settings.max_prompt_chars}.",
                param="messages",
            )
        prepared = await backend.prepare(params, default_max_tokens=settings.default_max_tokens)
        if prepared.prompt_tokens is not None and prepared.prompt_tokens > settings.max_prompt_tokens:
            raise PromptTooLarge(
                f"The prompt is {prepared.prompt_tokens} tokens; this node accepts at most "
                f"{settings.max_prompt_tokens}.",
                param="messages",
            )
        job = JobJournal.job_of(chat.model_extra or {})
        if job is not None and chat.stream:
            raise InvalidRequest("A paid job (`user` naming a job) is answered whole: set stream to false.")

        async def complete() -> dict[str, Any]:
            await gate.acquire(timeout=deadline - time.monotonic())
            try:
                completion = await backend.complete(prepared, deadline=deadline)
            finally:
                gate.release()
            metrics.record_usage(backend.model_id, completion.finish_reason, completion.usage)
            return completion_body(new_completion_id(), backend.model_id, completion)

        if job is not None:
            answer, replayed = await journal.run_once(job, body, complete, received_at=received_at)
            if replayed:
                response.headers["X-BME-Replayed"] = "true"
            return answer
        if not chat.stream:
            return await complete()
        await gate.acquire(timeout=deadline - time.monotonic())
        release = _Once(gate.release)
        # Wait for the first event before answering, so that a failure to start (an unreachable or
        # refusing upstream, a timeout in the queue of model instances) is a proper HTTP error.
        events = backend.stream(prepared, deadline=deadline)
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            release()
            raise
        return _SlotStreamingResponse(
            _stream_events(backend.model_id, metrics, chat, events, first, started, release),
            release=release,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


async def _stream_events(
    model_id: str,
    metrics: NodeMetrics,
    chat: ChatCompletionRequest,
    events: AsyncGenerator[StreamEvent, None],
    first: StreamEvent,
    started: float,
    release: Callable[[], None],
) -> AsyncIterator[bytes]:
    """The SSE body: a role chunk, text chunks, a finish chunk, the usage chunk if asked, then [DONE]."""
    writer = ChunkWriter(new_completion_id(), model_id, include_usage=chat.include_usage)
    try:
        yield writer.delta(ChunkDelta(role="assistant", content=""))
        async with aclosing(events):
            event: StreamEvent | None = first
            if isinstance(first, TextDelta):
                metrics.ttft.observe(time.monotonic() - started)
            while event is not None:
                if isinstance(event, Finished):
                    yield writer.delta(ChunkDelta(), finish_reason=event.finish_reason)
                    usage_chunk = writer.usage(event.usage)
                    if usage_chunk is not None:
                        yield usage_chunk
                    metrics.record_usage(model_id, event.finish_reason, event.usage)
                    break
                yield writer.delta(ChunkDelta(content=event.text))
                event = await anext(events, None)
        yield SSE_DONE
    except NodeError as exc:
        # The headers (200) are sent already: OpenAI's clients raise on an `error` event.
        metrics.rejections.labels(_reason(exc)).inc()
        yield sse(exc.body())
    finally:
        release()


class _Once:
    """A callable that runs `action` on its first call only (a slot must be released exactly once)."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action

    def __call__(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()


class _SlotStreamingResponse(StreamingResponse):
    """A stream that gives its completion slot back however it ends, even if it never starts
    (e.g. the client left before the headers were sent)."""

    def __init__(self, content: AsyncIterator[bytes], *, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is {declared} bytes; this node accepts at most {limit}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The request body exceeds {limit} bytes, the most this node accepts.")
        chunks.append(chunk)
    return b"".join(chunks)


def _request_target(scope: Scope) -> str:
    """The path as the client sent it, with its query string: what the relayer signed."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope["path"])
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def _reason(exc: NodeError) -> str:
    return exc.code or exc.error_type


def _install_error_handlers(app: FastAPI, metrics: NodeMetrics) -> None:
    @app.exception_handler(NodeError)
    async def node_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NodeError)
        metrics.rejections.labels(_reason(exc)).inc()
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        body = ErrorBody(
            error=ErrorDetail(
                message=f"{request.method} {request.url.path}: {exc.detail}",
                type="invalid_request_error",
                param=None,
                code="not_found" if exc.status_code == 404 else None,
            )
        )
        return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        body = ErrorBody(
            error=ErrorDetail(
                message="Internal error in the node.", type="server_error", param=None, code=None
            )
        )
        return JSONResponse(body.model_dump(), status_code=500)


class _RequestMetrics:
    """Counts each HTTP request by endpoint and status and times it to its last byte (streams included)."""

    def __init__(self, app: ASGIApp, metrics: NodeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = (
            path
            if path in _ENDPOINTS
            else "/v1/models/{model}"
            if path.startswith("/v1/models/")
            else "other"
        )
        started = time.monotonic()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.monotonic() - started)

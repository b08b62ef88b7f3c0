"""The relayer's HTTP API (FastAPI; the OpenAPI schema is served at /openapi.json).

- `POST /v1/jobs/{job_id}/reveal`: the payer reveals a job's request text with an EIP-712 `Reveal` signature.
- `GET /v1/jobs/{job_id}`: the job's state, answer and history, only for its payer (an EIP-712 `ReadJob`
  signature in `X-BME-Issued-At` and `X-BME-Signature`); `?wait=S` holds the call until the job settles or
  fails, at most S seconds. An answer is handed out once the job is settled, or while its settlement can
  still make the job's deadline; never for a job that expired or failed unsettled (its payer is refunded).
- `GET /v1/operators`, `GET /v1/models`; `/healthz`, `/readyz`, `/metrics`.

Requests are limited in size and in rate per address; every refusal is a 4xx with a message (`ErrorBody`).
Each route's body is a model of `bme.relayer.responses`, which the OpenAPI schema publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fastapi import FastAPI, Header, HTTPException, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bme.commitment import Domain, job_id_for, read_message, recover, reveal_message, spec_hash
from bme.job_states import FINAL_STATES, TERMINAL
from bme.relayer.db import State
from bme.relayer.requests import InvalidJobRequest, parse_job_request
from bme.relayer.responses import (
    ErrorBody,
    Health,
    JobStatus,
    JobTransition,
    OperatorRecord,
    PendingJob,
    PricedModel,
    Readiness,
    RevealAccepted,
    refusals,
)
from bme.relayer.store import JobStore, RevealConflict, RevealRecord

JOB_ID_PATTERN = r"^0x[0-9a-f]{64}$"
_JOB_ID = re.compile(JOB_ID_PATTERN)
REVEAL_PATH = "/v1/jobs/{job_id}/reveal"
#: The states that end a wait, by the `until` of a read: None means any change.
UNTIL: dict[str, frozenset[str] | None] = {
    "change": None,
    "answer": frozenset(s.value for s in (State.COMPLETED, State.SETTLING, *TERMINAL)),
    "final": frozenset(FINAL_STATES),
}
READ_WINDOW_S = 300


class RevealBody(BaseModel):
    request: str = Field(description="The request's JSON text exactly as hashed into specHash.")
    signature: str = Field(description="The payer's EIP-712 signature of Reveal(jobId, specHash), 0x-hex.")


class FastReveal:
    """POST /v1/jobs/{job_id}/reveal without FastAPI's generic path: the body is validated by pydantic from
    its JSON bytes and the answer written directly. A request whose job id, content type or body is not well
    formed goes to FastAPI's route unchanged (its body replayed), so refusals keep FastAPI's shape; a refusal
    of the route's own (`HTTPException`) is answered by the app's handler, as on FastAPI's route."""

    def __init__(self, accept: Callable[[str, RevealBody], RevealAccepted], fallback: BaseRoute) -> None:
        self.accept = accept
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job_id = scope["path_params"].get("job_id", "")
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        body: RevealBody | None = None
        if _JOB_ID.match(job_id) and _json_or_none(scope):
            try:
                body = RevealBody.model_validate_json(raw)
            except ValidationError:
                body = None
        if body is None:

            async def replay() -> Message:
                return {"type": "http.request", "body": raw, "more_body": False}

            await self.fallback.handle(scope, replay, send)
            return
        answer = self.accept(job_id, body).model_dump_json().encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def _json_or_none(scope: Scope) -> bool:
    """Whether the request's content type is JSON or not given (the bodies FastAPI reads as JSON)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            kind = value.split(b";", 1)[0].strip().lower()
            return bool(kind == b"application/json" or kind.endswith(b"+json"))
    return True


class BodyLimit:
    """Refuses a body over `max_bytes` (by its Content-Length, or as it streams in) with 413, before any route
    reads it. A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` costs a task per request."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, send, int(value))
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"the body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, send: Send, length: int) -> None:
        detail = f"the body is {length} bytes; the relayer accepts at most {self.max_bytes}"
        response = JSONResponse(ErrorBody(detail=detail).model_dump(), status_code=413)
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        return True


@dataclass(frozen=True)
class ApiLimits:
    """What a request may ask: its body's size, its answer's tokens, and how many calls an address makes;
    and how long before its deadline an unsettled job's answer is no longer handed out."""

    max_request_bytes: int
    max_tokens_limit: int
    rate_per_minute: int
    settle_margin_s: float = 30.0


def answer_withheld(state: str, deadline: int, chain_now: float, settle_margin_s: float) -> str | None:
    """Why a job's answer must not be handed out (None: it may). A payer who got the answer of a job that is
    never settled would be refunded for it: so no answer of a job that expired or failed unsettled, nor of one
    whose settlement could no longer make its deadline (it is handed out if the job settles after all)."""
    if state == State.SETTLED.value:
        return None
    if state in (State.EXPIRED.value, State.FAILED.value):
        return f"the job ended {state} without a settlement: its answer is not handed out"
    if deadline < chain_now + settle_margin_s:
        return (
            f"the job is not settled and its deadline is less than {settle_margin_s:g} s away: its answer is "
            "handed out only if it settles"
        )
    return None


class ApiService(Protocol):
    """What the API asks of the service behind it (the relayer, or nothing at all for `StandaloneService`)."""

    def revealed(self, job_id: str) -> None:
        """A reveal made a job ready for dispatch."""

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service is ready, and what `/readyz` reports."""

    def prometheus(self) -> bytes:
        """The Prometheus exposition of the service's metrics."""

    async def job_changed(self, job_id: str, timeout: float, targets: frozenset[str] | None) -> None:
        """Returns when the job reaches one of `targets` (None: any other state), or ends, or on timeout."""

    def chain_now(self) -> float:
        """The chain's time now (the clock of the jobs' deadlines)."""


class StandaloneService:
    """The API over a store with no service behind it: for publishing the schema and for tests."""

    def revealed(self, job_id: str) -> None:
        return None

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return True, {}

    def prometheus(self) -> bytes:
        return b""

    async def job_changed(self, job_id: str, timeout: float, targets: frozenset[str] | None) -> None:
        return None

    def chain_now(self) -> float:
        return time.time()


def create_api(
    store: JobStore,
    domain: Domain,
    limits: ApiLimits,
    service: ApiService,
    *,
    extra_routes: Callable[[FastAPI], None] | None = None,
) -> FastAPI:
    max_request_bytes, max_tokens_limit = limits.max_request_bytes, limits.max_tokens_limit
    rate_per_minute = limits.rate_per_minute
    app = FastAPI(
        title="BME relayer",
        version="1",
        description="Reveal paid inference requests, read their answers, inspect the relayer.",
    )
    limiter = RateLimiter(rate_per_minute)

    def limit(key: str) -> None:
        if not limiter.allow(key.lower()):
            raise HTTPException(429, f"too many requests from {key}: at most {rate_per_minute} a minute")

    app.add_middleware(BodyLimit, max_bytes=max_request_bytes)

    @app.get("/healthz", response_description="The process answers.")
    async def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_description="Ready.",
        response_model_exclude_unset=True,
        responses={503: {"model": Readiness, "description": "Not ready: the same body, `ready` false."}},
    )
    async def readyz(response: Response) -> Readiness:
        """Whether the relayer does its work: 200 when ready, 503 with the same body when not."""
        ok, detail = service.readiness()
        response.status_code = 200 if ok else 503
        return Readiness(ready=ok, **detail)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"description": "Prometheus text exposition format 0.0.4."}},
    )
    async def prometheus() -> PlainTextResponse:
        """The relayer's Prometheus metrics."""
        return PlainTextResponse(service.prometheus(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post(
        REVEAL_PATH,
        status_code=202,
        response_description="The reveal is stored.",
        responses=refusals(
            {
                400: "a bad signature, an invalid request, or a model the price book does not list",
                403: "the signer is not the payer of this job for this request",
                409: "the job was revealed before with another request",
                413: "the body or the request text is too large",
                429: "too many requests from this payer",
            }
        ),
    )
    async def reveal(body: RevealBody, job_id: str = Path(pattern=JOB_ID_PATTERN)) -> RevealAccepted:
        """Reveals a job's request. The signer must be the job's payer: `jobId == keccak(payer, specHash)`."""
        return accept_reveal(job_id, body)

    def accept_reveal(job_id: str, body: RevealBody) -> RevealAccepted:
        """The reveal route's work, once its path and body are valid (raises `HTTPException` to refuse)."""
        if len(body.request.encode("utf-8")) > max_request_bytes:
            raise HTTPException(413, f"the request text exceeds {max_request_bytes} bytes")
        spec = spec_hash(body.request)
        try:
            signer = recover(reveal_message(domain, int(job_id, 16), spec), body.signature)
        except ValueError as exc:
            raise HTTPException(400, f"bad signature: {exc}") from None
        limit(signer)
        if job_id_for(signer, spec) != int(job_id, 16):
            raise HTTPException(
                403,
                "the signature is not the payer's for this job and request: the job id must equal "
                "keccak256(abi.encode(signer, keccak256(request)))",
            )
        try:
            request = parse_job_request(body.request, max_tokens_limit)
        except InvalidJobRequest as exc:
            raise HTTPException(400, f"invalid request: {exc}") from None
        if request.model not in store.models():
            known = ", ".join(sorted(store.models())) or "none yet"
            raise HTTPException(400, f"unknown model {request.model!r}: the price book lists {known}")
        try:
            state, reason = store.add_reveal(
                RevealRecord(
                    job_id=job_id,
                    payer=signer,
                    spec_hash="0x" + spec.hex(),
                    model=request.model,
                    request=body.request,
                    signature=body.signature,
                    received_at=time.time(),
                )
            )
        except RevealConflict as exc:
            raise HTTPException(409, str(exc)) from None
        if state == State.REVEALED.value:
            service.revealed(job_id)
        return RevealAccepted(job_id=job_id, payer=signer, state=State(state), reason=reason)

    # The hot path: a plain ASGI route ahead of FastAPI's (which stays, for the OpenAPI schema and for every
    # request this one does not take), so a well-formed reveal skips FastAPI's generic request handling.
    fastapi_reveal = next(r for r in app.router.routes if getattr(r, "path", None) == REVEAL_PATH)
    app.router.routes.insert(
        0,
        Route(
            REVEAL_PATH, FastReveal(accept_reveal, fastapi_reveal), methods=["POST"], include_in_schema=False
        ),
    )

    @app.get(
        "/v1/jobs/{job_id}",
        response_description="The job, or PENDING with its id and the reason before its payment is ingested.",
        responses=refusals(
            {
                400: "a bad signature",
                401: f"the read signature is not made within {READ_WINDOW_S} s of now",
                403: "the signer is not the job's payer",
                404: "no job with this id is known to this relayer",
                429: "too many requests from this payer",
            }
        ),
    )
    async def read_job(
        job_id: str = Path(pattern=JOB_ID_PATTERN),
        x_bme_issued_at: int = Header(description="Unix time the read signature was made."),
        x_bme_signature: str = Header(
            description="The payer's EIP-712 signature of ReadJob(jobId, issuedAt)."
        ),
        wait: float = Query(default=0.0, ge=0, le=120, description="Hold the call up to this many seconds."),
        until: Literal["change", "answer", "final"] = Query(
            default="change",
            description="What ends a wait: any change of state, an answer ready, or the job's end.",
        ),
    ) -> JobStatus | PendingJob:
        """A job's state and answer, for its payer only: a job whose payment is not ingested yet is PENDING,
        with only its id and the reason."""
        if abs(time.time() - x_bme_issued_at) > READ_WINDOW_S:
            raise HTTPException(401, f"the read signature must be made within {READ_WINDOW_S} s of now")
        try:
            signer = recover(read_message(domain, int(job_id, 16), x_bme_issued_at), x_bme_signature)
        except ValueError as exc:
            raise HTTPException(400, f"bad signature: {exc}") from None
        limit(signer)
        job, transitions = store.job(job_id)
        reveal = store.reveal(job_id) if job is None else None
        payer = job.payer if job is not None else (reveal.payer if reveal is not None else None)
        if payer is None:
            raise HTTPException(404, f"no job {job_id} is known to this relayer")
        if payer.lower() != signer.lower():
            raise HTTPException(403, "only the job's payer may read it")
        targets = UNTIL[until]
        reached = job is not None and targets is not None and job.state in targets
        if wait > 0 and not reached:
            await service.job_changed(job_id, wait, targets)
            job, transitions = store.job(job_id)
        if job is None:
            return PendingJob(
                job_id=job_id, state=State.PENDING, reason="revealed; its payment is not ingested yet"
            )
        withheld = None
        if job.answer is not None:
            withheld = answer_withheld(job.state, job.deadline, service.chain_now(), limits.settle_margin_s)
        return JobStatus(
            job_id=job_id,
            state=State(job.state),
            reason=job.reason,
            payer=job.payer,
            model_id=job.model_id,
            max_credits=job.max_credits,
            tokens_burned=job.tokens_burned,
            deadline=job.deadline,
            open_tx=job.tx_hash,
            operator=job.operator,
            answer=job.answer if withheld is None else None,
            answer_withheld=withheld,
            input_tokens=job.input_tokens,
            output_tokens=job.output_tokens,
            reported_input_tokens=job.reported_input_tokens,
            reported_output_tokens=job.reported_output_tokens,
            result_hash=job.result_hash,
            settle_tx=job.settle_tx,
            charge=job.charge,
            refund=job.refund,
            history=[JobTransition(state=State(t.state), at=t.at, detail=t.detail) for t in transitions],
        )

    @app.get("/v1/operators", response_description="The registry's operators and their service.")
    async def operators() -> list[OperatorRecord]:
        """Operators the registry lists, with this relayer's record of their service: calls dispatched,
        succeeded and failed; of the failures, how many found the node unreachable (no answer) and how many
        got an error answer; the last failure's reason, which starts with its kind; and how many answers
        reported more tokens than the relayer counted (usage disputes)."""
        return [
            OperatorRecord(
                address=o.address,
                endpoint=o.endpoint,
                models=[int(m) for m in o.models.split(",") if m],
                active=o.active,
                jailed=o.jailed,
                dispatched=o.dispatched,
                succeeded=o.succeeded,
                failed=o.failed,
                unreachable=o.unreachable,
                answered_errors=o.answered_errors,
                usage_disputes=o.usage_disputes,
                latency_ewma_ms=round(o.latency_ewma_ms, 3),
                last_error=o.last_error,
            )
            for o in store.operators()
        ]

    @app.get("/v1/models", response_description="The price book.")
    async def models() -> list[PricedModel]:
        """The price book: USD credits (micro-dollars) per million input and output tokens."""
        return [
            PricedModel(
                model_id=m.model_id,
                name=m.name,
                input_price_per_million=m.input_price,
                output_price_per_million=m.output_price,
                listed=m.listed,
            )
            for m in store.model_rows()
        ]

    if extra_routes is not None:
        extra_routes(app)
    return app


async def wait_any(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)

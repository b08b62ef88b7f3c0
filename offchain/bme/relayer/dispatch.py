"""Dispatch: choose an operator for each revealed job, call its node with the relayer's signed credential.

A job is recorded DISPATCHED, with its operator, before the call. The node's body names the job in OpenAI's
`user` field (covered by the signature), so a call repeated after a crash is answered from the node's
journal rather than served twice. Failures are retried on another operator, at most
`max_tries_per_operator` times on each; a request the node refuses as invalid fails the job at once, and the
payer refunds it after its deadline.

A node that is down for a moment or overloaded must not use up a job's tries in a second: a call that found
nobody listening (connection refused or reset) or that the node turned away as busy (429, 503) is
*unavailable*. It counts in the operator's record but not against the job's tries, and the job waits before
its next try, twice as long after each such failure (0.25 s, 0.5 s, 1 s, ... at most 15 s), for as long as
the job can still be settled before its deadline; the leader fails it when it no longer can.

Every failure is one of two kinds, recorded in the job's history and the operator's record
(GET /v1/operators), because they call for different remedies: **unreachable** (no answer came: connection
refused or reset, the node's process gone mid-call, a timeout before any answer; the operator's machine or
process is down) and **answered error** (the node answered with an HTTP error status and an OpenAI-style
error body, or with something that is not a completion; the node runs but cannot serve the request).

An answer's usage is not taken on the operator's word: the relayer counts the job's tokens itself and settles
each field at the least of the report, its count and the request's cap (`bme.relayer.usage`); a report
beyond the count is a usage dispute, recorded against the operator and weighed like a failure when choosing.

A job that could no longer be settled before its on-chain deadline, even if an operator answered at once
(its deadline is less than `settle_margin_s` ahead on the chain's clock), is not dispatched: it fails at once
with that reason, and its payer may refund it after the deadline. Serving it would hand out an answer the
payer could then be refunded for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from eth_account.signers.local import LocalAccount

from bme.commitment import result_hash
from bme.credential import JOB_PREFIX, sign_request
from bme.relayer.db import UNAVAILABLE
from bme.relayer.metrics import RelayerMetrics
from bme.relayer.store import Choice, Claim, Completion, JobStore, OperatorInfo, Tries
from bme.relayer.store.base import JobRow
from bme.relayer.usage import SettledUsage, UsageCounting, settle_usage

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
#: How long an idle connection to a node is kept for reuse: under the node servers' keep-alive timeout.
KEEPALIVE_S = 2.0
#: Statuses after which the same request must not be sent elsewhere: the request itself is invalid.
FATAL_STATUSES = {400, 413, 422}
#: Statuses of a node too busy for now (rate limited, overloaded, restarting its model): try again later.
BUSY_STATUSES = {429, 503}
#: Answers are written together: as soon as this many wait, or this long after the first of them arrived.
ANSWERS_PER_WRITE = 32
ANSWERS_WINDOW_S = 0.002
#: The two kinds of failure (`OperatorError.kind`).
UNREACHABLE = "unreachable"
ANSWERED_ERROR = "answered error"


@dataclass(frozen=True)
class Answer:
    text: str
    input_tokens: int
    output_tokens: int


class OperatorError(Exception):
    """A failed call: `outcome` for the attempt's record (error, timeout, rejected), `kind` unreachable or
    answered error, `detail` the reason, starting with the kind."""

    def __init__(self, outcome: str, kind: str, detail: str, fatal: bool = False) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.kind = kind
        self.detail = detail
        self.fatal = fatal


def unreachable(outcome: str, reason: str) -> OperatorError:
    """No answer came from the node: its reason is the transport's error."""
    return OperatorError(outcome, UNREACHABLE, f"{UNREACHABLE}: {reason}")


def answered_error(status: int, raw: bytes) -> OperatorError:
    """The node answered `status` with the error body `raw`; a request it refuses as invalid is fatal."""
    fatal = status in FATAL_STATUSES
    return OperatorError(
        "rejected" if fatal else UNAVAILABLE if status in BUSY_STATUSES else "error",
        ANSWERED_ERROR,
        f"{ANSWERED_ERROR} {status}: {_error_message(raw)}",
        fatal,
    )


def node_body(claim_request: str, job_id: str) -> bytes:
    """The body sent to the node: the revealed request, minus the nonce, naming the job."""
    request: dict[str, Any] = json.loads(claim_request)
    request.pop("nonce", None)
    request["stream"] = False
    request["user"] = JOB_PREFIX + job_id
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


#: The largest token count the escrow's `settle` takes (a uint32).
MAX_TOKENS_REPORTED = 2**32 - 1


def parse_answer(payload: Any) -> Answer:
    """The answer's text and token counts, checked at the boundary: an operator's malformed or impossible
    answer (no text, a count that is not a whole number from 0 to 2**32 - 1) fails this call only, and the
    job is tried again, instead of reaching the store and the settlement batch."""
    try:
        text = payload["choices"][0]["message"]["content"]
        usage = payload["usage"]
        counts = (usage["prompt_tokens"], usage["completion_tokens"])
    except (KeyError, IndexError, TypeError) as exc:
        raise _not_a_completion(f"{exc!r} missing") from None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise _not_a_completion(f"the content is a {type(text).__name__}, not text")
    for name, count in zip(("prompt_tokens", "completion_tokens"), counts, strict=True):
        if type(count) is not int or not 0 <= count <= MAX_TOKENS_REPORTED:
            raise _not_a_completion(f"usage.{name} is {count!r}, not a count from 0 to {MAX_TOKENS_REPORTED}")
    return Answer(text, counts[0], counts[1])


def _not_a_completion(why: str) -> OperatorError:
    return OperatorError("error", ANSWERED_ERROR, f"{ANSWERED_ERROR} 200: not a completion ({why})")


class Dispatcher:
    """Claims revealed jobs from the store and runs their calls concurrently."""

    def __init__(
        self,
        store: JobStore,
        account: LocalAccount,
        metrics: RelayerMetrics,
        *,
        timeout_s: float = 120.0,
        max_tries_per_operator: int = 3,
        concurrency: int = 64,
        on_completed: Any = None,
        usage: UsageCounting | None = None,
        settle_margin_s: float = 30.0,
        chain_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        #: The relayer's own count of each answer's tokens (the bound alone until `usage.load()` ran).
        self.usage = usage if usage is not None else UsageCounting(embedded=False)
        #: What a settlement needs before a job's deadline, and the chain's time now (its deadlines' clock).
        self.settle_margin_s = settle_margin_s
        self.chain_clock = chain_clock
        self._count_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-count")
        self.account = account
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.max_tries = max_tries_per_operator
        self.concurrency = concurrency
        self.in_flight: dict[str, int] = {}
        self._chosen: dict[str, int] = {}  # operators chosen in the claim being made
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_completed = on_completed or (lambda _job_id: None)
        self._http: aiohttp.ClientSession | None = None
        self._answers: list[Completion] = []  # answers waiting for their write (`_record`)
        self._flush: asyncio.TimerHandle | None = None

    def choose(self, job: JobRow, tried: Tries, operators: list[OperatorInfo]) -> Choice:
        """The next operator: active, unjailed, serving the model, with tries left; then the least called for
        this job, the most reliable, the least loaded and the fastest."""
        serving = [o for o in operators if o.active and not o.jailed and job.model_id in o.models]
        if not serving:
            return Choice(wait=f"no active operator serves model {job.model_id}")
        left = [o for o in serving if tried.used.get(o.address, 0) < self.max_tries]
        if not left:
            return Choice(
                fail=f"every operator serving model {job.model_id} failed it {self.max_tries} times"
            )
        chosen = min(
            left,
            key=lambda o: (
                tried.calls.get(o.address, 0),
                round(o.failure_ratio, 1),
                self.in_flight.get(o.address, 0) + self._chosen.get(o.address, 0),
                o.latency_ms,
            ),
        )
        # Counted at once, so the next job of the same claim sees this one and spreads to other operators.
        self._chosen[chosen.address] = self._chosen.get(chosen.address, 0) + 1
        return Choice(chosen)

    def too_late(self, job: JobRow) -> str | None:
        """Why `job` must not be dispatched: its deadline leaves no time to settle an answer (None: go)."""
        now = self.chain_clock()
        if job.deadline >= now + self.settle_margin_s:
            return None
        left = job.deadline - now
        when = f"{left:.0f} s away" if left > 0 else "passed"
        return (
            f"not dispatched: its deadline is {when} and a settlement needs {self.settle_margin_s:g} s, so "
            "an answer could not be settled in time; the payer may refund it after the deadline"
        )

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def dispatch_ready(self, lease_s: float) -> int:
        """Claims what is ready (up to the free concurrency) and starts the calls; returns how many."""
        room = self.concurrency - len(self._tasks)
        if room <= 0:
            return 0
        self._chosen.clear()
        claims, failed = self.store.claim(room, lease_s, self.choose, refuse=self.too_late)
        for job_id in failed:
            self.metrics.jobs_failed.inc()
            log.info("job %s failed: no operator left to try, or no time left to settle it", job_id)
        self._chosen.clear()
        for claim in claims:
            self.in_flight[claim.operator] = self.in_flight.get(claim.operator, 0) + 1
            task = asyncio.create_task(self._serve(claim))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claims)

    async def _serve(self, claim: Claim) -> None:
        started = time.monotonic()
        try:
            answer = await self._call(claim)
        except OperatorError as exc:
            latency = (time.monotonic() - started) * 1000
            self.metrics.dispatch_outcomes.labels(outcome=exc.outcome).inc()
            self.store.dispatch_failed(claim, exc.outcome, exc.detail, latency, exc.fatal, kind=exc.kind)
            log.info("job %s on %s: %s (%s)", claim.job_id, claim.operator, exc.outcome, exc.detail)
            return
        except Exception as exc:  # a bug must not kill the loop; the lease makes the job come back
            log.exception("job %s: unexpected failure", claim.job_id)
            self.store.dispatch_failed(claim, "error", repr(exc), 0.0, False)
            return
        finally:
            self.in_flight[claim.operator] -= 1
        latency = (time.monotonic() - started) * 1000
        self.metrics.dispatch_outcomes.labels(outcome="ok").inc()
        self.metrics.operator_latency.observe(latency / 1000)
        if self.usage.exact_counters:
            # A tokenizer costs a few hundred microseconds a job (llama.cpp's, which leaves the GIL): off the
            # event loop, on a thread of its own.
            loop = asyncio.get_running_loop()
            usage = await loop.run_in_executor(self._count_pool, self.settled_usage, claim, answer)
        else:
            usage = self.settled_usage(claim, answer)  # the byte bound: microseconds
        hashed = "0x" + result_hash(answer.text).hex()
        tokens = (usage.input_tokens, usage.output_tokens)
        disputed = bool(usage.disputed)
        self._record(
            Completion(claim, answer.text, *tokens, hashed, latency, usage.reported, disputed, usage.detail())
        )

    def _record(self, done: Completion) -> None:
        """Queues an answer for the next write of answers: at once when `ANSWERS_PER_WRITE` wait, else after
        `ANSWERS_WINDOW_S`, so answers arriving together share one transaction. Until it commits the job is
        DISPATCHED under this relayer's lease: after a crash the lease runs out and the job goes to the same
        operator again, whose journal answers it without serving it twice."""
        self._answers.append(done)
        if len(self._answers) >= ANSWERS_PER_WRITE:
            self.flush_answers()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(ANSWERS_WINDOW_S, self.flush_answers)

    def flush_answers(self) -> None:
        """Writes the queued answers in one transaction, then tells `on_completed` of each job completed."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        answers, self._answers = self._answers, []
        try:
            completed = self.store.complete_many(answers)
        except Exception:  # the store is unavailable: the leases run out and the jobs are sent again
            log.exception("recording %s answers failed", len(answers))
            return
        for job_id in completed:
            self._on_completed(job_id)

    def settled_usage(self, claim: Claim, answer: Answer) -> SettledUsage:
        """What the job is settled for: the operator's report against the relayer's count and the request's
        cap; a dispute is logged and counted against the operator."""
        started = time.thread_time()  # CPU time of this thread: the count's own cost
        counted, max_tokens = self.usage.count(claim.request, answer.text)
        self.metrics.count_seconds.observe(time.thread_time() - started)
        usage = settle_usage((answer.input_tokens, answer.output_tokens), counted, max_tokens)
        if usage.excess > 0:
            self.metrics.tokens_not_settled.labels(operator=claim.operator).inc(usage.excess)
        if usage.disputed:
            self.metrics.usage_disputes.labels(operator=claim.operator).inc()
            log.warning("job %s on %s: %s", claim.job_id, claim.operator, usage.detail())
        return usage

    async def _call(self, claim: Claim) -> Answer:
        body = node_body(claim.request, claim.job_id)
        url = claim.endpoint.rstrip("/") + CHAT_PATH
        path = urlsplit(url).path or CHAT_PATH
        headers = sign_request(self.account, "POST", path, body, operator=claim.operator)
        headers["Content-Type"] = "application/json"
        sent = time.monotonic()
        status: int | None = None
        try:
            async with self._session().post(url, data=body, headers=headers) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            after = "" if status is None else f" (the answer broke off after status {status})"
            raise unreachable("timeout", f"no answer within {self.timeout_s:g} s{after}") from None
        except aiohttp.ClientError as exc:
            # Refused, reset or dropped before a whole answer arrived: the node's process or machine is gone.
            after = "" if status is None else f" after status {status}"
            outcome = UNAVAILABLE if status is None else "error"  # refused or reset before any answer
            raise unreachable(outcome, f"{type(exc).__name__}{after}: {exc}") from None
        finally:
            self.metrics.dispatch_latency.observe(time.monotonic() - sent)
        assert status is not None
        if status != 200:
            raise answered_error(status, raw)
        try:
            payload = json.loads(raw)
        except ValueError:
            raise OperatorError("error", ANSWERED_ERROR, f"{ANSWERED_ERROR} 200: not JSON") from None
        return parse_answer(payload)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:  # created on the running loop, as aiohttp requires
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s, connect=5.0),
                # Idle connections are dropped before the node's server drops them (uvicorn: after 5 s), so
                # a call never goes out on a connection the node is closing ("Server disconnected").
                connector=aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=KEEPALIVE_S),
            )
        return self._http

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.flush_answers()
        if self._http is not None:
            await self._http.close()
        self._count_pool.shutdown(wait=False, cancel_futures=True)


def _error_message(raw: bytes) -> str:
    """The message of an OpenAI-style error body (else the body's start), as a clause: no final period."""
    try:
        text = str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = raw[:500].decode("utf-8", "replace")
    return text[:500].strip().rstrip(".")

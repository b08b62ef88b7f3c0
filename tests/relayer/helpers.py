"""What the relayer's end-to-end tests share: paying jobs quickly, and counting what happened on each side.

Jobs are paid from a CRD balance (`JobEscrow.openJob`): each user burns CMP for credits once (the BME core's
minimum mint is 10 CRD, enough for thousands of one-token jobs), then opens jobs with pre-signed raw
transactions, several users interleaved, sent in JSON-RPC batches (one transaction per user per batch) without
waiting for each receipt. Each job's request is revealed to the relayer (`JobsClient.reveal`) before it is
paid.

The evidence is read from each party independently of the relayer's own bookkeeping: `JobOpened` and
`JobSettled` events from the chain (`eth_getLogs` through web3.py's ABI decoding), the operator node's job
journal (one line per arrival, one per answer) and its `/healthz` counters, and the relayer's database.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from bme.chain.abi import calldata
from bme.chain.deploy import SMOLLM2
from bme.commitment import job_hex, job_id_for, request_text, spec_hash
from bme.relayer.db import Attempt, Job, Lease, Transition
from bme.relayer.store import JobStore
from bme.stack import LocalStack, Process
from bme.user.jobs import JobsClient, PreparedJob, StepFailed
from bme.user.prompt_tokens import max_prompt_tokens
from bme.user.quote import quote_job

CMP = 10**18
MODEL = SMOLLM2.name
OPEN_JOB_GAS = 200_000
#: Settings every end-to-end relayer gets: no rate limit in the way of a thousand reveals, quick batches,
#: quick recovery of a settlement whose send was lost.
FAST_RELAYER = {
    "BME_RELAYER_RATE_PER_MINUTE": "1000000",
    "BME_RELAYER_BATCH_AGE_S": "0.2",
    "BME_RELAYER_POLL_INTERVAL_S": "0.2",
    "BME_RELAYER_STUCK_AFTER_S": "3",
    "BME_RELAYER_LEADER_TTL_S": "3",
}


def wait_until(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Polls `predicate` until it returns something truthy; fails the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def rpc(url: str, method: str, params: Sequence[Any] = (), timeout: float = 30.0) -> Any:
    reply = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=timeout
    ).json()
    if "error" in reply:
        raise AssertionError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class PaidJob:
    """A job prepared for one user: its request (committed to) and its signed `openJob` transaction."""

    user: LocalAccount
    prepared: PreparedJob
    raw_tx: str
    tx_hash: str

    @property
    def job_hex(self) -> str:
        return self.prepared.job_hex


class JobFactory:
    """Makes, reveals and pays one-token jobs for the stack's users, as fast as the devnet takes them."""

    def __init__(
        self,
        stack: LocalStack,
        relayer_url: str,
        *,
        users: Sequence[LocalAccount] | None = None,
        max_tokens: int = 1,
        prompt: str = "Hi",
        model: str = MODEL,
        model_id: int = SMOLLM2.model_id,
        duration_s: int = 3600,
    ) -> None:
        self.stack = stack
        self.users = list(users if users is not None else stack.users)
        self.clients = {u.address: JobsClient(stack.protocol, u, relayer_url) for u in self.users}
        self.max_tokens = max_tokens
        self.prompt = prompt
        self.model = model
        self.model_id = model_id
        self.duration_s = duration_s
        # One quote serves every job (same model, prompt and cap): the reservation each job makes.
        self.quote = quote_job(stack.protocol, model, max_output_tokens=max_tokens, prompt=prompt)
        self.max_credits = self.quote.max_credits
        self._nonces: dict[str, int] = {}
        self._gas_price = max(2 * int(rpc(stack.anvil.url, "eth_gasPrice"), 16), 10**9)
        self._made = 0

    def fund(self, cmp_each: int = 20 * CMP) -> None:
        """Each user burns `cmp_each` CMP for credits (paid to its CRD balance)."""
        p, client = self.stack.protocol, self.stack.client
        self.stack.push_price()  # burns need a fresh oracle price
        for u in self.users:
            # Raw transactions of other factories bypass the client's nonce cache: read it afresh.
            client.reset_nonce(u.address)
            self._nonces.pop(u.address, None)
            client.send(u, p.token.functions.approve(p.bme.address, cmp_each))
            client.send(u, p.bme.functions.burn(cmp_each, 0))
            client.reset_nonce(u.address)

    def set_client_url(self, url: str) -> None:
        for c in self.clients.values():
            c.relayer_url = url.rstrip("/")

    def make(self, count: int, *, model: str | None = None, model_id: int | None = None) -> list[PaidJob]:
        """`count` jobs, users taking turns; their transactions are signed with consecutive nonces."""
        deadline = self.stack.client.timestamp() + self.duration_s
        jobs = []
        for i in range(count):
            user = self.users[(self._made + i) % len(self.users)]
            messages = [{"role": "user", "content": self.prompt}]
            text = request_text(model or self.model, messages, self.max_tokens)
            spec = spec_hash(text)
            prepared = PreparedJob(
                text,
                spec,
                job_id_for(user.address, spec),
                self.quote,
                max_prompt_tokens(messages),
                self.max_tokens,
            )
            terms = (model_id or self.model_id, spec, deadline, *self.caps(prepared))
            data = calldata("JobEscrow", "openJob", self.max_credits, terms)
            signed = user.sign_transaction(
                {
                    "to": self.stack.protocol.escrow.address,
                    "data": "0x" + data.hex(),
                    "value": 0,
                    "gas": OPEN_JOB_GAS,
                    "gasPrice": self._gas_price,
                    "nonce": self._nonce(user),
                    "chainId": self.stack.client.chain_id,
                }
            )
            jobs.append(
                PaidJob(user, prepared, "0x" + bytes(signed.raw_transaction).hex(), "0x" + signed.hash.hex())
            )
        self._made += count
        return jobs

    def caps(self, prepared: PreparedJob) -> tuple[int, int]:
        """The usage caps a job commits to: the wallet's own (overridable, to pay with other caps)."""
        return prepared.max_input_tokens, prepared.max_output_tokens

    def _nonce(self, user: LocalAccount) -> int:
        if user.address not in self._nonces:
            self._nonces[user.address] = int(
                rpc(self.stack.anvil.url, "eth_getTransactionCount", [user.address, "pending"]), 16
            )
        nonce = self._nonces[user.address]
        self._nonces[user.address] = nonce + 1
        return nonce

    def reveal(self, job: PaidJob, *, retry_for: float = 120.0) -> dict[str, Any]:
        """Reveals the job's request to the relayer, retrying while the relayer is down (restarting)."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return self.clients[job.user.address].reveal(job.prepared)
            except StepFailed as exc:
                transient = "unreachable" in str(exc) or "(5" in str(exc)
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def pay(self, jobs: Sequence[PaidJob]) -> None:
        """Sends the jobs' transactions, one JSON-RPC batch per round of one transaction per payer.

        anvil handles a batch's items concurrently: two transactions of one sender in the same batch may
        reach its pool out of nonce order, and the later one can then stay queued for good though its
        predecessor was mined. One transaction per sender per batch keeps each sender's nonces in order.
        """
        queues: dict[str, list[PaidJob]] = {}
        for job in jobs:
            queues.setdefault(job.user.address, []).append(job)
        for round_ in itertools.zip_longest(*queues.values()):
            payload = [
                {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [j.raw_tx]}
                for i, j in enumerate(j for j in round_ if j is not None)
            ]
            replies = httpx.post(self.stack.anvil.url, json=payload, timeout=120).json()
            errors = [r["error"] for r in replies if "error" in r]
            assert not errors, f"paying jobs: {errors[:3]}"

    def unmined(self, jobs: Sequence[PaidJob]) -> list[PaidJob]:
        """The jobs whose payment has no receipt (yet)."""
        missing: list[PaidJob] = []
        for start in range(0, len(jobs), 200):
            part = jobs[start : start + 200]
            payload = [
                {"jsonrpc": "2.0", "id": i, "method": "eth_getTransactionReceipt", "params": [j.tx_hash]}
                for i, j in enumerate(part)
            ]
            answers = httpx.post(self.stack.anvil.url, json=payload, timeout=60).json()
            replies = {r["id"]: r.get("result") for r in answers}
            missing += [j for i, j in enumerate(part) if replies.get(i) is None]
        return missing

    def wait_mined(self, jobs: Sequence[PaidJob], timeout: float = 60.0) -> None:
        """Waits for every payment's receipt; fails saying what the node's pool holds if some never come."""
        missing: list[PaidJob] = list(jobs)
        deadline = time.monotonic() + timeout
        while missing and time.monotonic() < deadline:
            missing = self.unmined(missing)
            time.sleep(0.2)
        if missing:
            url, first = self.stack.anvil.url, missing[0]
            chain_nonce = int(rpc(url, "eth_getTransactionCount", [first.user.address, "latest"]), 16)
            tx = rpc(url, "eth_getTransactionByHash", [first.tx_hash])
            raise AssertionError(
                f"{len(missing)} payments never mined; the first, {first.tx_hash} from {first.user.address} "
                f"(chain nonce {chain_nonce}): {tx}; pool {rpc(url, 'txpool_status')}; "
                f"base fee {rpc(url, 'eth_getBlockByNumber', ['latest', False]).get('baseFeePerGas')}"
            )

    def reveal_and_pay(self, jobs: Sequence[PaidJob], *, chunk: int = 50) -> None:
        """Each chunk's requests revealed, then the chunk paid."""
        for start in range(0, len(jobs), chunk):
            part = jobs[start : start + chunk]
            for job in part:
                self.reveal(job)
            self.pay(part)

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


# -- evidence ------------------------------------------------------------------------------------------


def chain_events(stack: LocalStack, name: str) -> Counter[str]:
    """How many times each job id appears in the escrow's `name` events on the canonical chain."""
    escrow = stack.protocol.escrow
    logs = getattr(escrow.events, name)().get_logs(from_block=stack.protocol.deployment.first_block)
    return Counter(job_hex(int(ev["args"]["jobId"])) for ev in logs)


def settled_events(stack: LocalStack) -> list[dict[str, Any]]:
    logs = stack.protocol.escrow.events.JobSettled().get_logs(
        from_block=stack.protocol.deployment.first_block
    )
    return [{"job_id": job_hex(int(ev["args"]["jobId"])), **dict(ev["args"])} for ev in logs]


@dataclass
class Journal:
    """A node's job journal: arrivals and answers per job id."""

    arrivals: Counter[str]
    answers: Counter[str]


def read_journal(path: Path) -> Journal:
    arrivals: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            (answers if record.get("answer") is not None else arrivals)[record["job"]] += 1
    return Journal(arrivals, answers)


def node_journal(stack: LocalStack, index: int) -> Journal:
    return read_journal(stack.work_dir / f"node-{index}-journal.jsonl")


def node_health(node: Process) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(node.url + "/healthz", timeout=10).json()
    return body


def operators_view(relayer: Process) -> dict[str, dict[str, Any]]:
    """GET /v1/operators, by address."""
    return {o["address"]: o for o in httpx.get(relayer.url + "/v1/operators", timeout=10).json()}


class RelayerDb:
    """Read-only look into a relayer's database."""

    def __init__(self, url: str) -> None:
        self.store = JobStore(url, owner="pytest-reader")

    def states(self, job_ids: Iterable[str] | None = None) -> dict[str, str]:
        with self.store.session() as s:
            q = select(Job.job_id, Job.state)
            if job_ids is not None:
                q = q.where(Job.job_id.in_(list(job_ids)))
            return {str(j): str(st) for j, st in s.execute(q)}

    def count(self, state: str) -> int:
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(Job).where(Job.state == state)) or 0)

    def attempts(self) -> Counter[str]:
        """Operator calls recorded per job."""
        with self.store.session() as s:
            return Counter(
                {
                    str(j): int(n)
                    for j, n in s.execute(select(Attempt.job_id, func.count()).group_by(Attempt.job_id))
                }
            )

    def attempts_by_operator(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        with self.store.session() as s:
            for op, outcome, n in s.execute(
                select(Attempt.operator, Attempt.outcome, func.count()).group_by(
                    Attempt.operator, Attempt.outcome
                )
            ):
                out.setdefault(str(op), Counter())[str(outcome)] = int(n)
        return out

    def transitions(self, job_id: str) -> list[tuple[str, float, str, str | None]]:
        with self.store.session() as s:
            return [
                (t.state, t.at, t.by, t.detail)
                for t in s.scalars(
                    select(Transition).where(Transition.job_id == job_id).order_by(Transition.id)
                )
            ]

    def transition_counts(self, state: str) -> Counter[str]:
        with self.store.session() as s:
            return Counter(
                {
                    str(j): int(n)
                    for j, n in s.execute(
                        select(Transition.job_id, func.count())
                        .where(Transition.state == state)
                        .group_by(Transition.job_id)
                    )
                }
            )

    def transitions_by(self, state: str) -> dict[str, str]:
        """Which relayer recorded each job's (last) transition to `state`."""
        with self.store.session() as s:
            q = (
                select(Transition.job_id, Transition.by)
                .where(Transition.state == state)
                .order_by(Transition.id)
            )
            return {str(j): str(by) for j, by in s.execute(q)}

    def leader(self) -> str | None:
        with self.store.session() as s:
            lease = s.get(Lease, "leader")
            return None if lease is None or lease.until < time.time() else lease.owner

    def job(self, job_id: str) -> Job | None:
        return self.store.job(job_id)[0]

    def close(self) -> None:
        self.store.engine.dispose()


def pause(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)


def resume(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGCONT)


class FakeCompletions:
    """An OpenAI-compatible endpoint on a local port that answers every chat completion at once with what
    `answer(i)` returns for its i-th call: the content and the usage it claims (prompt, completion tokens). It
    stands in for an operator's upstream that lies; `calls` counts the completions it gave."""

    def __init__(self, answer: Callable[[int], tuple[str, int, int]], model: str | None = None) -> None:
        self.calls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                content, prompt_tokens, completion_tokens = answer(fake.calls)
                fake.calls += 1
                completion: dict[str, Any] = {
                    "id": f"chatcmpl-fake-{fake.calls}",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                }
                if model is not None:
                    completion["model"] = model
                body = json.dumps(completion).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

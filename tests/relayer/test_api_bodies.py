"""The relayer API's response bodies, key by key, through the app itself (FastAPI's TestClient on a SQLite job
store, no chain): the shapes clients read (`bme.user.jobs`, the tests, the demo) stay what they were, now that
the routes declare pydantic response models."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from bme.chain.events import Event
from bme.commitment import (
    Domain,
    job_hex,
    job_id_for,
    read_message,
    request_text,
    reveal_message,
    sign,
    spec_hash,
)
from bme.relayer.api import ApiLimits, StandaloneService, create_api
from bme.relayer.responses import ErrorBody
from bme.relayer.store import Choice, JobStore, OperatorInfo

pytestmark = pytest.mark.pure

MODEL = "SmolLM2-135M-Instruct"
OPERATOR = OperatorInfo("0x" + "01" * 20, "http://127.0.0.1:1", (1, 2), True, False)
DOMAIN = Domain(31337, "0x" + "11" * 20)
JOB_KEYS = [
    "job_id",
    "state",
    "reason",
    "payer",
    "model_id",
    "max_credits",
    "tokens_burned",
    "deadline",
    "open_tx",
    "operator",
    "answer",
    "answer_withheld",
    "input_tokens",
    "output_tokens",
    "reported_input_tokens",
    "reported_output_tokens",
    "result_hash",
    "settle_tx",
    "charge",
    "refund",
    "history",
]


@dataclass
class Relayer:
    store: JobStore
    http: TestClient
    payer: LocalAccount
    readiness: list[tuple[bool, dict[str, Any]]]

    def reveal(self, text: str, signer: LocalAccount | None = None) -> tuple[str, Any]:
        spec = spec_hash(text)
        job_id = job_id_for(self.payer.address, spec)
        signature = sign(signer or self.payer, reveal_message(DOMAIN, job_id, spec))
        response = self.http.post(
            f"/v1/jobs/{job_hex(job_id)}/reveal", json={"request": text, "signature": signature}
        )
        return job_hex(job_id), response

    def read(self, job: str, issued_at: int | None = None) -> Any:
        issued_at = int(time.time()) if issued_at is None else issued_at
        signature = sign(self.payer, read_message(DOMAIN, int(job, 16), issued_at))
        return self.http.get(
            f"/v1/jobs/{job}", headers={"X-BME-Issued-At": str(issued_at), "X-BME-Signature": signature}
        )


def event(name: str, block: int, args: dict[str, Any]) -> Event:
    return Event(name, args, block, f"0x{block:064x}", "0x" + "cd" * 32, 0)


def ingest(store: JobStore, events: list[Event], upto: int) -> None:
    hashes = {e.block_number: e.block_hash for e in events}
    store.ingest(events, hashes, (upto, f"0x{upto:064x}"), [OPERATOR])


def pay(store: JobStore, payer: str, text: str, block: int) -> None:
    args = {
        "jobId": job_id_for(payer, spec_hash(text)),
        "payer": payer,
        "modelId": 1,
        "maxCredits": 1_000,
        "tokensBurned": 10**19,
        "deadline": 4_000_000_000,
        "specHash": spec_hash(text),
        "maxInputTokens": 10_000,
        "maxOutputTokens": 256,
    }
    ingest(store, [event("JobOpened", block, args)], block)


def prompt(n: int) -> str:
    """Request text number `n`: the same text each time (its nonce is fixed)."""
    return request_text(MODEL, [{"role": "user", "content": f"Question {n}"}], 8, nonce=f"fixed-nonce-{n}")


@pytest.fixture
def relayer(tmp_path: Path) -> Iterator[Relayer]:
    store = JobStore(f"sqlite:///{tmp_path / 'relayer.db'}", owner="test")
    priced = {"modelId": 1, "name": MODEL, "inputPricePerMillion": 100, "outputPricePerMillion": 200}
    ingest(store, [event("ModelPriced", 1, priced)], 9)
    readiness: list[tuple[bool, dict[str, Any]]] = [
        (True, {"leader": True, "seconds_since_poll": 0.5, "jobs": {"OPENED": 1}})
    ]

    class Service(StandaloneService):
        def readiness(self) -> tuple[bool, dict[str, Any]]:
            return readiness[-1]

        def prometheus(self) -> bytes:
            return b"# HELP up 1\n"

    app = create_api(store, DOMAIN, ApiLimits(4096, 64, 1_000), Service())
    with TestClient(app) as http:
        yield Relayer(store, http, Account.from_key(b"\x33" * 32), readiness)


def test_a_reveal_answers_the_job_its_payer_and_state(relayer: Relayer) -> None:
    job, early = relayer.reveal(prompt(1))
    assert early.status_code == 202
    assert early.json() == {"job_id": job, "payer": relayer.payer.address, "state": "PENDING", "reason": None}
    pay(relayer.store, relayer.payer.address, prompt(2), 10)
    job, paid = relayer.reveal(prompt(2))
    assert paid.json() == {"job_id": job, "payer": relayer.payer.address, "state": "REVEALED", "reason": None}


def test_a_job_read_before_its_payment_is_pending_with_three_keys(relayer: Relayer) -> None:
    job, _ = relayer.reveal(prompt(1))
    response = relayer.read(job)
    assert response.status_code == 200
    assert response.json() == {
        "job_id": job,
        "state": "PENDING",
        "reason": "revealed; its payment is not ingested yet",
    }


def test_a_paid_job_reads_with_its_answer_and_history(relayer: Relayer) -> None:
    payer = relayer.payer.address
    pay(relayer.store, payer, prompt(1), 10)
    job, _ = relayer.reveal(prompt(1))
    claims, _failed = relayer.store.claim(10, 60.0, lambda _job, _tried, ops: Choice(ops[0]))
    relayer.store.complete(claims[0], "Blue, red, green.", 31, 5, "0x" + "ee" * 32, 12.5)
    body = relayer.read(job).json()
    assert list(body) == JOB_KEYS
    assert {k: body[k] for k in JOB_KEYS if k != "history"} == {
        "job_id": job,
        "state": "COMPLETED",
        "reason": None,
        "payer": payer,
        "model_id": 1,
        "max_credits": 1_000,
        "tokens_burned": str(10**19),  # a decimal string: CMP amounts exceed 64 bits
        "deadline": 4_000_000_000,
        "open_tx": "0x" + "cd" * 32,
        "operator": OPERATOR.address,
        "answer": "Blue, red, green.",
        "answer_withheld": None,
        "input_tokens": 31,
        "output_tokens": 5,
        "reported_input_tokens": 31,
        "reported_output_tokens": 5,
        "result_hash": "0x" + "ee" * 32,
        "settle_tx": None,
        "charge": None,
        "refund": None,
    }
    assert [list(t) for t in body["history"]] == [["state", "at", "detail"]] * 4
    assert [t["state"] for t in body["history"]] == ["OPENED", "REVEALED", "DISPATCHED", "COMPLETED"]
    assert all(isinstance(t["at"], float) for t in body["history"])


def test_refusals_are_a_detail_string(relayer: Relayer) -> None:
    job, _ = relayer.reveal(prompt(1))
    stale = relayer.read(job, issued_at=int(time.time()) - 3_600)
    stranger = relayer.reveal(prompt(1), signer=Account.create())[1]
    unknown = relayer.reveal(request_text("No-Such-Model", [{"role": "user", "content": "Hi"}], 8))[1]
    oversize = relayer.reveal(prompt(1) + " " * 5_000)[1]
    for response, status in ((stale, 401), (stranger, 403), (unknown, 400), (oversize, 413)):
        assert response.status_code == status
        assert list(response.json()) == ["detail"] and isinstance(response.json()["detail"], str)
        ErrorBody.model_validate(response.json())


def test_operators_and_models_list_their_records(relayer: Relayer) -> None:
    (operator,) = relayer.http.get("/v1/operators").json()
    assert operator == {
        "address": OPERATOR.address,
        "endpoint": OPERATOR.endpoint,
        "models": [1, 2],
        "active": True,
        "jailed": False,
        "dispatched": 0,
        "succeeded": 0,
        "failed": 0,
        "unreachable": 0,
        "answered_errors": 0,
        "usage_disputes": 0,
        "latency_ewma_ms": 0.0,
        "last_error": None,
    }
    assert relayer.http.get("/v1/models").json() == [
        {
            "model_id": 1,
            "name": MODEL,
            "input_price_per_million": 100,
            "output_price_per_million": 200,
            "listed": True,
        }
    ]


def test_health_readiness_and_metrics(relayer: Relayer) -> None:
    assert relayer.http.get("/healthz").json() == {"status": "ok"}
    ready = relayer.http.get("/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"ready": True, "leader": True, "seconds_since_poll": 0.5, "jobs": {"OPENED": 1}},
    )
    relayer.readiness.append((False, {"leader": False, "seconds_since_poll": None, "jobs": {}}))
    not_ready = relayer.http.get("/readyz")
    assert (not_ready.status_code, not_ready.json()) == (
        503,
        {"ready": False, "leader": False, "seconds_since_poll": None, "jobs": {}},
    )
    relayer.readiness.append((True, {}))  # a field not reported is left out, not sent as null
    assert relayer.http.get("/readyz").json() == {"ready": True}
    metrics = relayer.http.get("/metrics")
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert metrics.text == "# HELP up 1\n"


def test_the_fast_reveal_route_answers_and_refuses_as_fastapis_own_route(tmp_path: Path) -> None:
    """The reveal's hot path (a plain ASGI route ahead of FastAPI's) answers what FastAPI's own route
    answers, for accepted reveals and for every kind of refusal: a malformed job id, body or content type
    (handed on to FastAPI's route, 422), a bad signature or another signer (the route's own 400 and 403)."""
    payer, other = Account.from_key(b"\x33" * 32), Account.from_key(b"\x44" * 32)
    priced = {"modelId": 1, "name": MODEL, "inputPricePerMillion": 100, "outputPricePerMillion": 200}

    def client(name: str, fast: bool) -> TestClient:
        store = JobStore(f"sqlite:///{tmp_path / name}", owner="test")
        ingest(store, [event("ModelPriced", 1, priced)], 9)
        pay(store, payer.address, prompt(2), 10)
        app = create_api(store, DOMAIN, ApiLimits(4096, 64, 1_000), StandaloneService())
        first = app.router.routes[0]
        assert type(first).__name__ == "Route" and getattr(first, "path", "") == "/v1/jobs/{job_id}/reveal"
        if not fast:
            app.router.routes.pop(0)  # FastAPI's own route alone
        return TestClient(app)

    def signed(text: str, signer: LocalAccount = payer) -> tuple[str, str]:
        spec = spec_hash(text)
        job_id = job_id_for(payer.address, spec)
        return job_hex(job_id), sign(signer, reveal_message(DOMAIN, job_id, spec))

    job1, sig1 = signed(prompt(1))
    job2, sig2 = signed(prompt(2))
    job3, sig3 = signed(prompt(3), other)
    cases: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/jobs/{job1}/reveal", {"json": {"request": prompt(1), "signature": sig1}}),  # PENDING
        (f"/v1/jobs/{job2}/reveal", {"json": {"request": prompt(2), "signature": sig2}}),  # REVEALED
        (f"/v1/jobs/{job1}/reveal", {"json": {"request": prompt(1), "signature": sig1}}),  # the same again
        (f"/v1/jobs/{job3}/reveal", {"json": {"request": prompt(3), "signature": sig3}}),  # 403
        (f"/v1/jobs/{job1}/reveal", {"json": {"request": prompt(1), "signature": "0x12"}}),  # 400
        (f"/v1/jobs/{job1.upper()}/reveal", {"json": {"request": prompt(1), "signature": sig1}}),  # 422 id
        (f"/v1/jobs/{job1}/reveal", {"json": {"request": prompt(1)}}),  # 422: no signature
        (f"/v1/jobs/{job1}/reveal", {"content": b"{not json"}),  # 422: not JSON
        (
            f"/v1/jobs/{job1}/reveal",
            {
                "content": json.dumps({"request": prompt(1), "signature": sig1}).encode(),
                "headers": {"content-type": "text/plain"},
            },
        ),  # 422: not sent as JSON
    ]
    with client("fast.db", True) as fast, client("fastapi.db", False) as plain:
        answers = [
            [(r.status_code, r.json()) for r in (http.post(url, **kw) for url, kw in cases)]
            for http in (fast, plain)
        ]
    assert answers[0] == answers[1]
    statuses = [status for status, _ in answers[0]]
    assert statuses == [202, 202, 202, 403, 400, 422, 422, 422, 422]
    assert [body["state"] for _, body in answers[0][:3]] == ["PENDING", "REVEALED", "PENDING"]

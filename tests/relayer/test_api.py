"""Bad input through a running relayer's API (POST /v1/jobs/{id}/reveal), and a job revealed for another model
than it paid for: FAILED with its reason, never dispatched, refunded in full once past its deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from bme.chain.deploy import SMOLLM2, ModelListing
from bme.commitment import job_hex, job_id_for, request_text, reveal_message, sign, spec_hash
from bme.stack import LocalStack, Process, StackConfig
from bme.user.jobs import JobsClient, StepFailed

from .helpers import FAST_RELAYER, JobFactory, RelayerDb, node_journal, operators_view, rpc, wait_until

#: A second model in the price book, which no operator serves.
OTHER = ModelListing(2, "Other-Model", 100_000, 200_000)
MAX_REQUEST_BYTES = 64 * 1024


@dataclass
class Api:
    stack: LocalStack
    relayer: Process
    db: RelayerDb
    factory: JobFactory

    def reveal(self, job_id: str, request: str, signature: str) -> httpx.Response:
        return httpx.post(
            f"{self.relayer.url}/v1/jobs/{job_id}/reveal",
            json={"request": request, "signature": signature},
            timeout=30,
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: Any) -> Iterator[Api]:
    work: Path = tmp_path_factory.mktemp("api")
    with LocalStack(StackConfig(work_dir=work, users=2, models=[SMOLLM2, OTHER])) as st:
        st.start_node(0)
        relayer = st.start_relayer(extra_env=FAST_RELAYER)
        factory = JobFactory(st, relayer.url, users=[st.users[0]])
        factory.fund()
        db = RelayerDb(f"sqlite:///{work / 'relayer.db'}")
        wait_until("the price book ingested", lambda: len(db.store.model_rows()) == 2, 30)
        yield Api(st, relayer, db, factory)
        db.close()


def text(model: str = SMOLLM2.name, max_tokens: int = 1, **extra: Any) -> str:
    body = json.loads(request_text(model, [{"role": "user", "content": "Hi"}], max_tokens))
    return json.dumps({**body, **extra}, separators=(",", ":"))


def signed(api: Api, request: str, signer: Any = None, spec_of: str | None = None) -> tuple[str, str]:
    """The payer's job id for `request`, and a Reveal signature by `signer` (default the payer) over the
    specHash of `spec_of` (default the request itself)."""
    payer = api.stack.users[0]
    job_id = job_id_for(payer.address, spec_hash(request))
    domain = api.factory.clients[payer.address].domain
    signature = sign(signer or payer, reveal_message(domain, job_id, spec_hash(spec_of or request)))
    return job_hex(job_id), signature


def detail(response: httpx.Response) -> str:
    return str(response.json()["detail"])


def test_a_reveal_signed_over_another_request_is_refused(api: Api) -> None:
    request, other = text(), text()
    job_id, signature = signed(api, request, spec_of=other)
    response = api.reveal(job_id, request, signature)
    assert response.status_code == 403
    assert "not the payer's for this job and request" in detail(response)


def test_a_request_that_does_not_match_the_jobs_commitment_is_refused(api: Api) -> None:
    committed, sent = text(), text()
    job_id, _ = signed(api, committed)
    _, signature = signed(api, sent)  # a valid signature, but over another request than the job commits to
    response = api.reveal(job_id, sent, signature)
    assert response.status_code == 403


def test_a_reveal_signed_by_someone_else_than_the_payer_is_refused(api: Api) -> None:
    request = text()
    job_id, signature = signed(api, request, signer=Account.create())
    response = api.reveal(job_id, request, signature)
    assert response.status_code == 403
    assert "keccak256(abi.encode(signer, keccak256(request)))" in detail(response)


@pytest.mark.parametrize(
    ("signature", "why"),
    [("0x1234", "a signature is 65 bytes"), ("0x" + "zz" * 65, "not hex"), ("0x" + "00" * 65, "")],
)
def test_a_malformed_signature_is_refused(api: Api, signature: str, why: str) -> None:
    request = text()
    job_id, _ = signed(api, request)
    response = api.reveal(job_id, request, signature)
    assert response.status_code == 400
    assert detail(response).startswith("bad signature") and why in detail(response)


def test_an_unknown_model_is_refused(api: Api) -> None:
    request = text(model="No-Such-Model")
    job_id, signature = signed(api, request)
    response = api.reveal(job_id, request, signature)
    assert response.status_code == 400
    assert "unknown model 'No-Such-Model'" in detail(response)
    assert "SmolLM2-135M-Instruct" in detail(response)


@pytest.mark.parametrize(
    ("request_text_", "why"),
    [
        ("not json", "the request is not JSON"),
        (text(stream=True), "stream"),
        (text(max_tokens=10**6), "max_tokens"),
        ('["a list"]', "must be a JSON object"),
    ],
)
def test_an_invalid_request_is_refused(api: Api, request_text_: str, why: str) -> None:
    job_id, signature = signed(api, request_text_)
    response = api.reveal(job_id, request_text_, signature)
    assert response.status_code == 400
    assert detail(response).startswith("invalid request") and why in detail(response)


def test_an_oversize_body_is_refused(api: Api) -> None:
    request = text(padding="x" * MAX_REQUEST_BYTES)
    job_id, signature = signed(api, request)
    response = api.reveal(job_id, request, signature)
    assert response.status_code == 413
    # Without a Content-Length (streamed in chunks), the same.
    chunked = httpx.post(
        f"{api.relayer.url}/v1/jobs/{job_id}/reveal",
        content=iter([json.dumps({"request": request, "signature": signature}).encode()]),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert chunked.status_code == 413


def test_a_malformed_job_id_is_refused(api: Api) -> None:
    request = text()
    _, signature = signed(api, request)
    assert api.reveal("0x1234", request, signature).status_code == 422


def test_a_repeated_reveal_is_accepted_once(api: Api) -> None:
    """A conflicting second reveal (409) cannot be signed: the job id commits to the request, so another
    request is another job (403 above); the store's own conflict check is covered in test_store. The same
    reveal twice is accepted and changes nothing."""
    request = text()
    job_id, signature = signed(api, request)
    first, second = api.reveal(job_id, request, signature), api.reveal(job_id, request, signature)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert first.json()["state"] == "PENDING"
    assert api.db.store.reveal(job_id) is not None


def test_refused_reveals_leave_nothing_behind(api: Api) -> None:
    request = text(model="No-Such-Model")
    job_id, signature = signed(api, request)
    assert api.reveal(job_id, request, signature).status_code == 400
    assert api.db.store.reveal(job_id) is None
    client = api.factory.clients[api.stack.users[0].address]
    with pytest.raises(StepFailed, match="404"):
        client.status(int(job_id, 16))


def test_a_job_revealed_for_another_model_fails_and_is_refunded_after_its_deadline(api: Api) -> None:
    st, factory = api.stack, api.factory
    payer = st.users[0]
    client: JobsClient = factory.clients[payer.address]
    # Revealed before its payment, for the other model; then paid for the embedded model.
    (early,) = factory.make(1, model=OTHER.name, model_id=SMOLLM2.model_id)
    assert factory.reveal(early)["state"] == "PENDING"
    # Paid for the other model first, then revealed for the embedded one.
    (late,) = factory.make(1, model=SMOLLM2.name, model_id=OTHER.model_id)
    dispatched_before = operators_view(api.relayer)[st.operators[0].address]["dispatched"]
    factory.pay([early, late])
    failed = client.wait(early.prepared.job_id, timeout=30)
    assert failed["state"] == "FAILED"
    assert failed["reason"] == (
        f"the request asks for model {OTHER.name!r} but the job paid for model {SMOLLM2.model_id}"
    )
    wait_until("the late job ingested", lambda: api.db.job(late.job_hex) is not None, 30)
    revealed = factory.reveal(late)
    assert revealed["state"] == "FAILED"
    assert revealed["reason"] == (
        f"the request asks for model {SMOLLM2.name!r} but the job paid for model {OTHER.model_id}"
    )

    # Never dispatched: no operator call, nothing at the node.
    assert api.db.attempts()[early.job_hex] == api.db.attempts()[late.job_hex] == 0
    assert operators_view(api.relayer)[st.operators[0].address]["dispatched"] == dispatched_before
    journal = node_journal(st, 0)
    assert not {early.job_hex, late.job_hex} & (set(journal.arrivals) | set(journal.answers))

    # Before the deadline the payer cannot take the reservation back; after it, all of it returns as CRD.
    with pytest.raises(StepFailed, match="is open until"):
        client.refund(early.prepared.job_id)
    rpc(st.anvil.url, "evm_increaseTime", [factory.duration_s + 1])
    rpc(st.anvil.url, "evm_mine")
    for job in (early, late):
        before = st.protocol.credit.functions.balanceOf(payer.address).call()
        client.refund(job.prepared.job_id)
        after = st.protocol.credit.functions.balanceOf(payer.address).call()
        assert after - before == factory.max_credits
        assert st.protocol.escrow.functions.jobOf(job.prepared.job_id).call()[4] == 3  # Expired
    wait_until(
        "the relayer to see the expiries",
        lambda: set(api.db.states([early.job_hex, late.job_hex]).values()) == {"EXPIRED"},
        30,
    )
    history = [t[0] for t in api.db.transitions(early.job_hex)]
    assert history == ["PENDING", "OPENED", "FAILED", "EXPIRED"]  # revealed before its payment

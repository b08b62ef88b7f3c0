"""The job store's transactions, on SQLite and on PostgreSQL: the state machine and its recorded transitions,
reveals, claims and leases, failures and retries, rollback after a reorganisation, and the atomicity of
ingestion (rows and checkpoint together)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from eth_abi import decode
from eth_account import Account
from sqlalchemy import event, func, select, update

from bme.chain.events import Event
from bme.relayer.db import UNAVAILABLE, BlockHash, Job, Reveal, Settlement, State
from bme.relayer.dispatch import Dispatcher
from bme.relayer.metrics import RelayerMetrics
from bme.relayer.settle import settle_calldata
from bme.relayer.store import (
    Choice,
    Completion,
    JobStore,
    OperatorInfo,
    RevealConflict,
    Tries,
    unavailable_backoff,
)

pytestmark = pytest.mark.pure

PAYER = "0x" + "ab" * 20
OP1 = OperatorInfo("0x" + "01" * 20, "http://127.0.0.1:1", (1,), True, False)
OP2 = OperatorInfo("0x" + "02" * 20, "http://127.0.0.1:2", (1,), True, False)
MODEL, OTHER_MODEL = "SmolLM2-135M-Instruct", "Other-Model"
FAR = 4_000_000_000  # a deadline far ahead
CAPS = (10_000, 256)  # a job's usage caps (input, output tokens), as its payer committed them on-chain


def block_hash(number: int, fork: int = 0) -> str:
    return f"0x{fork:02x}{number:062x}"


def job_hex(job_id: int) -> str:
    return f"0x{job_id:064x}"


def ev(name: str, block: int, args: dict[str, Any], fork: int = 0, index: int = 0) -> Event:
    return Event(name, args, block, block_hash(block, fork), "0x" + "cd" * 32, index)


def priced(model_id: int, name: str, block: int = 1) -> Event:
    return ev(
        "ModelPriced",
        block,
        {"modelId": model_id, "name": name, "inputPricePerMillion": 100, "outputPricePerMillion": 200},
    )


def opened(
    job_id: int,
    block: int,
    model_id: int = 1,
    deadline: int = FAR,
    fork: int = 0,
    caps: tuple[int, int] = CAPS,
) -> Event:
    return ev(
        "JobOpened",
        block,
        {
            "jobId": job_id,
            "payer": PAYER,
            "modelId": model_id,
            "maxCredits": 1_000,
            "tokensBurned": 10**19,
            "deadline": deadline,
            "specHash": job_id.to_bytes(32, "big"),
            "maxInputTokens": caps[0],
            "maxOutputTokens": caps[1],
        },
        fork,
    )


def settled(job_id: int, block: int, charge: int = 4, refund: int = 996) -> Event:
    return ev(
        "JobSettled",
        block,
        {
            "jobId": job_id,
            "operator": OP1.address,
            "inputTokens": 31,
            "outputTokens": 1,
            "charge": charge,
            "refund": refund,
            "resultHash": b"\x00" * 32,
        },
    )


def ingest(store: JobStore, events: list[Event], upto: int, operators: tuple[OperatorInfo, ...] = ()) -> Any:
    hashes = {e.block_number: e.block_hash for e in events}
    return store.ingest(events, hashes, (upto, block_hash(upto)), list(operators))


def reveal(job_id: int, model: str = MODEL, request: str | None = None) -> Reveal:
    return Reveal(
        job_id=job_hex(job_id),
        payer=PAYER,
        spec_hash="0x" + job_id.to_bytes(32, "big").hex(),
        model=model,
        request=request
        or f'{{"model":"{model}","messages":[{{"role":"user","content":"Hi"}}],"n":{job_id}}}',
        signature="0x" + "00" * 65,
        received_at=time.time(),
    )


def first_operator(_job: Job, _tried: Tries, operators: list[OperatorInfo]) -> Choice:
    return Choice(operators[0])


def prepared(store: JobStore, jobs: int, operators: tuple[OperatorInfo, ...] = (OP1,)) -> list[str]:
    """The price book, the operators and `jobs` revealed jobs (one per block from block 10)."""
    ingest(store, [priced(1, MODEL), priced(2, OTHER_MODEL)], 9, operators)
    ingest(store, [opened(i, 10 + i) for i in range(1, jobs + 1)], 10 + jobs)
    for i in range(1, jobs + 1):
        store.add_reveal(reveal(i))
    return [job_hex(i) for i in range(1, jobs + 1)]


def state(store: JobStore, job_id: str) -> str:
    job = store.job(job_id)[0]
    assert job is not None
    return job.state


def dispatcher(store: JobStore, max_tries: int) -> Dispatcher:
    return Dispatcher(store, Account.create(), RelayerMetrics(), max_tries_per_operator=max_tries)


# -- the state machine -------------------------------------------------------------------------------------


def test_job_walks_the_state_machine_recording_each_transition(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    began = time.time()
    ingest(store, [priced(1, MODEL)], 9, (OP1,))
    ingest(store, [opened(1, 10)], 10)
    job_id = job_hex(1)
    assert state(store, job_id) == "OPENED"
    assert store.add_reveal(reveal(1)) == ("REVEALED", None)
    claims, failed = store.claim(10, 60.0, first_operator)
    assert [c.job_id for c in claims] == [job_id] and not failed
    assert (claims[0].operator, claims[0].endpoint, claims[0].try_number) == (OP1.address, OP1.endpoint, 1)
    assert state(store, job_id) == "DISPATCHED"
    assert store.complete(claims[0], "Hello", 31, 1, "0x" + "ee" * 32, 12.5)
    ready, oldest = store.settleable(50)
    assert [j.job_id for j in ready] == [job_id] and oldest is not None
    settlement = store.begin_settlement([job_id], 7, "0x" + "77" * 32, 10**9)
    assert state(store, job_id) == "SETTLING"
    assert [s.id for s in store.pending_settlements()] == [settlement]
    assert store.settlement_mined(settlement, "0x" + "77" * 32, 12, 50_000) == [job_id]
    # The settlement's event, ingested afterwards, adds the charge and refund but no second transition.
    ingest(store, [settled(1, 12)], 12)
    job, transitions = store.job(job_id)
    ended = time.time()
    assert job is not None
    assert (job.state, job.charge, job.refund, job.closed_block) == ("SETTLED", 4, 996, 12)
    assert (job.answer, job.input_tokens, job.output_tokens, job.operator) == ("Hello", 31, 1, OP1.address)
    assert [t.state for t in transitions] == [
        "OPENED",
        "REVEALED",
        "DISPATCHED",
        "COMPLETED",
        "SETTLING",
        "SETTLED",
    ]
    times = [t.at for t in transitions]
    assert times == sorted(times) and began <= times[0] and times[-1] <= ended
    assert {t.by for t in transitions} == {"relayer-a"}
    assert all(t.detail for t in transitions if t.state != "REVEALED")
    assert not store.pending_settlements()


def test_reveal_before_its_payment_waits_then_the_payment_makes_it_revealed(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL), priced(2, OTHER_MODEL)], 9)
    assert store.add_reveal(reveal(1)) == ("PENDING", None)
    assert store.add_reveal(reveal(1)) == ("PENDING", None)  # the same reveal again: nothing changes
    result = ingest(store, [opened(1, 10)], 10)
    assert result.revealed == [job_hex(1)] and result.opened == 1
    assert [t.state for t in store.job(job_hex(1))[1]] == ["PENDING", "OPENED", "REVEALED"]


@pytest.mark.parametrize("before_payment", [True, False])
def test_reveal_for_another_model_than_paid_fails_the_job(store_url: str, before_payment: bool) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL), priced(2, OTHER_MODEL)], 9)
    if before_payment:
        store.add_reveal(reveal(1, model=OTHER_MODEL))
        ingest(store, [opened(1, 10, model_id=1)], 10)
    else:
        ingest(store, [opened(1, 10, model_id=1)], 10)
        assert store.add_reveal(reveal(1, model=OTHER_MODEL))[0] == "FAILED"
    job, transitions = store.job(job_hex(1))
    assert job is not None and job.state == "FAILED"
    assert job.reason == f"the request asks for model {OTHER_MODEL!r} but the job paid for model 1"
    waited = ["PENDING"] if before_payment else []
    assert [t.state for t in transitions] == [*waited, "OPENED", "FAILED"]
    assert store.claim(10, 60.0, first_operator) == ([], [])  # never dispatched


@pytest.mark.parametrize("before_payment", [True, False])
def test_reveal_asking_more_answer_tokens_than_the_paid_cap_fails_the_job(
    store_url: str, before_payment: bool
) -> None:
    """A job whose payment caps the answer below the request's max_tokens is never dispatched: an honest
    answer could not be settled in full."""
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL)], 9, (OP1,))
    asking = '{"model":"%s","messages":[{"role":"user","content":"Hi"}],"max_tokens":%d}'
    if before_payment:
        store.add_reveal(reveal(1, request=asking % (MODEL, 257)))
        ingest(store, [opened(1, 10, caps=(10_000, 256))], 10)
    else:
        ingest(store, [opened(1, 10, caps=(10_000, 256))], 10)
        assert store.add_reveal(reveal(1, request=asking % (MODEL, 257)))[0] == "FAILED"
    job, _ = store.job(job_hex(1))
    assert job is not None and job.state == "FAILED"
    assert job.reason == (
        "the request asks for up to 257 answer tokens but the job's payment caps them at 256: "
        "a full answer could not be settled"
    )
    assert store.claim(10, 60.0, first_operator) == ([], [])  # never dispatched
    # A request within the cap is dispatched.
    ingest(store, [opened(2, 11, caps=(10_000, 256))], 11)
    assert store.add_reveal(reveal(2, request=asking % (MODEL, 256))) == ("REVEALED", None)
    claims, _ = store.claim(10, 60.0, first_operator)
    assert [c.job_id for c in claims] == [job_hex(2)]


def test_a_settlement_never_counts_more_tokens_than_the_paid_caps(store_url: str) -> None:
    """An operator's reported counts above the job's on-chain caps are clamped to them in the `settle` call
    (the escrow would revert the whole batch otherwise); counts within the caps go through unchanged."""
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL)], 9, (OP1,))
    ingest(store, [opened(1, 10, caps=(40, 5)), opened(2, 11, caps=(40, 5))], 11)
    for n in (1, 2):
        store.add_reveal(reveal(n))
    claims, _ = store.claim(10, 60.0, first_operator)
    by_job = {c.job_id: c for c in claims}
    assert store.complete(by_job[job_hex(1)], "Hello", 31, 1, "0x" + "ee" * 32, 1.0)
    assert store.complete(by_job[job_hex(2)], "Hello" * 50, 4_000, 900, "0x" + "ef" * 32, 1.0)
    ready, _ = store.settleable(50)
    (rows,) = decode(
        ["(uint256,address,uint32,uint32,bytes32)[]"],
        settle_calldata(sorted(ready, key=lambda j: j.job_id))[4:],
    )
    assert [(job_id, t_in, t_out) for job_id, _op, t_in, t_out, _h in rows] == [(1, 31, 1), (2, 40, 5)]
    # The store keeps what the operator reported.
    job, _ = store.job(job_hex(2))
    assert job is not None and (job.input_tokens, job.output_tokens) == (4_000, 900)


def test_a_second_different_reveal_of_a_job_is_a_conflict(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    prepared(store, 1)
    with pytest.raises(RevealConflict):
        store.add_reveal(reveal(1, request='{"model":"SmolLM2-135M-Instruct","other":true}'))
    assert store.add_reveal(reveal(1)) == ("REVEALED", None)


# -- claims and leases ---------------------------------------------------------------------------------------


def test_a_claimed_job_is_taken_again_only_when_its_lease_runs_out(store_url: str) -> None:
    a, b = JobStore(store_url, owner="relayer-a"), JobStore(store_url, owner="relayer-b")
    (job_id,) = prepared(a, 1)
    now = time.time()
    (claim_a,), _ = a.claim(10, 30.0, first_operator, now=now)
    assert b.claim(10, 30.0, first_operator, now=now + 29) == ([], [])
    # The lease ran out (relayer a crashed mid-call): b sends it again to the same operator, whose journal
    # answers from the first run if it had one.
    (claim_b,), _ = b.claim(10, 30.0, lambda *_: Choice(OP2), now=now + 31)
    assert (claim_b.job_id, claim_b.operator, claim_b.try_number) == (job_id, OP1.address, 2)
    assert not a.complete(claim_a, "late", 1, 1, "0x" + "00" * 32, 1.0)  # no longer a's
    assert state(a, job_id) == "DISPATCHED"
    assert b.complete(claim_b, "Hello", 31, 1, "0x" + "00" * 32, 1.0)
    # The second send is in the history too, with its reason.
    dispatched = [t.detail for t in a.job(job_id)[1] if t.state == "DISPATCHED"]
    assert dispatched == [f"to {OP1.address}", f"again to {OP1.address}: its lease ran out in flight"]


def test_answers_arriving_together_are_written_in_one_transaction_each_move_checked(store_url: str) -> None:
    """Batched answers: one transaction (one commit) records every answer; each job's move keeps its own
    source and lease check and its one history row, so a job another relayer took meanwhile (its lease ran
    out) is left alone while the others of the batch complete."""
    a, b = JobStore(store_url, owner="relayer-a"), JobStore(store_url, owner="relayer-b")
    ids = prepared(a, 3)
    now = time.time()
    claims, _ = a.claim(10, 30.0, first_operator, now=now)
    assert sorted(c.job_id for c in claims) == ids
    with a.engine.begin() as c:  # a's lease on the second job ran out: b took it
        c.execute(update(Job).where(Job.job_id == ids[1]).values(lease_until=0.0))
    assert [c.job_id for c in b.claim(1, 30.0, first_operator, now=now + 1)[0]] == [ids[1]]
    commits: list[int] = []
    event.listen(a.engine, "commit", lambda _conn: commits.append(1))
    assert a.complete_many([]) == [] and not commits  # nothing to write: no transaction
    answers = [Completion(c, f"answer {c.job_id[-1]}", 31, 1, "0x" + "ee" * 32, 5.0) for c in claims]
    assert sorted(a.complete_many(answers)) == [ids[0], ids[2]] and len(commits) == 1
    assert [state(a, j) for j in ids] == ["COMPLETED", "DISPATCHED", "COMPLETED"]
    for job_id in ids:
        job, transitions = a.job(job_id)
        assert job is not None
        completed = [t.state for t in transitions].count("COMPLETED")
        if job_id == ids[1]:
            assert (job.answer, job.lease_owner, completed) == (None, "relayer-b", 0)
        else:
            assert (job.answer, job.lease_until, completed) == (f"answer {job_id[-1]}", 0.0, 1)


def test_a_restarted_relayer_takes_back_its_jobs_at_once(store_url: str) -> None:
    before = JobStore(store_url, owner="relayer-a")
    (job_id,) = prepared(before, 1)
    before.claim(10, 3600.0, first_operator)
    other = JobStore(store_url, owner="relayer-b")
    assert other.release_leases() == 0
    assert other.claim(10, 60.0, first_operator) == ([], [])
    restarted = JobStore(store_url, owner="relayer-a")
    assert restarted.release_leases() == 1
    (claim,), _ = restarted.claim(10, 60.0, first_operator)
    assert (claim.job_id, claim.try_number) == (job_id, 2)


def test_failed_calls_go_to_another_operator_then_fail_the_job(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    (job_id,) = prepared(store, 1, (OP1, OP2))
    choose = dispatcher(store, max_tries=2).choose
    used = []
    for _ in range(4):
        (claim,), _ = store.claim(10, 60.0, choose, now=time.time() + 1)
        used.append(claim.operator)
        store.dispatch_failed(claim, "error", "HTTP 502: upstream down", 3.0, fatal=False)
        assert state(store, job_id) == "REVEALED"
    assert sorted(used) == sorted([OP1.address, OP2.address] * 2)
    assert used[0] != used[1]  # the least-tried operator goes next
    claims, failed = store.claim(10, 60.0, choose, now=time.time() + 1)
    assert claims == [] and failed == [job_id]
    job = store.job(job_id)[0]
    assert job is not None and job.state == "FAILED"
    assert job.reason == "every operator serving model 1 failed it 2 times"
    ops = {o.address: o for o in store.operators()}
    assert ops[OP1.address].failed == 2 and ops[OP1.address].last_error == "HTTP 502: upstream down"
    assert store.dispatch_count() == 4


def test_calls_that_find_the_node_down_wait_longer_each_time_and_use_up_no_try(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    (job_id,) = prepared(store, 1, (OP1,))
    choose = dispatcher(store, max_tries=2).choose
    now, waits = time.time(), []
    for _ in range(7):  # far more calls than the operator's 2 tries
        (claim,), failed = store.claim(10, 60.0, choose, now=now)
        assert not failed and claim.operator == OP1.address
        store.dispatch_failed(
            claim, UNAVAILABLE, "unreachable: refused", 1.0, fatal=False, kind="unreachable"
        )
        job = store.job(job_id)[0]
        assert job is not None and job.state == "REVEALED"
        assert store.claim(10, 60.0, choose, now=job.lease_until - 0.01) == ([], [])  # not before its time
        waits.append(round(job.lease_until - job.updated_at, 2))
        now = job.lease_until + 0.01
    assert waits == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0]
    assert [unavailable_backoff(n) for n in (1, 5, 6, 7, 50)] == [0.25, 4.0, 8.0, 15.0, 15.0]
    # An answered error still uses up a try: two of them fail the job.
    for _ in range(2):
        (claim,), _ = store.claim(10, 60.0, choose, now=now)
        store.dispatch_failed(claim, "error", "answered error 500: boom", 1.0, fatal=False)
        now += 1
    assert store.claim(10, 60.0, choose, now=now) == ([], [job_id])
    history = [t.detail for t in store.job(job_id)[1] if t.detail and "dispatched again" in t.detail]
    assert len(history) == 9
    assert history[0] == f"{OP1.address}: unreachable: refused; to be dispatched again in 0.25 s"
    assert history[-1] == f"{OP1.address}: answered error 500: boom; to be dispatched again"


def test_a_job_no_operator_served_in_time_to_settle_fails_at_once(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL)], 9, (OP1,))
    ingest(
        store,
        [opened(1, 10, deadline=1_000), opened(2, 11, deadline=1_000), opened(3, 12, deadline=2_000)],
        12,
    )
    for i in (1, 2, 3):
        store.add_reveal(reveal(i))
    (in_flight,), _ = store.claim(1, 60.0, first_operator)  # job 1: its call may still answer
    assert store.fail_unservable(969, margin_s=30) == []  # 1,000 >= 969 + 30: a settlement still makes it
    assert store.fail_unservable(971, margin_s=30) == [job_hex(2)]
    job = store.job(job_hex(2))[0]
    assert job is not None and job.state == "FAILED"
    assert job.reason is not None and job.reason.startswith("no operator served it in time to settle")
    assert state(store, in_flight.job_id) == "DISPATCHED" and state(store, job_hex(3)) == "REVEALED"


def test_a_request_the_node_refuses_as_invalid_fails_the_job_at_once(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    (job_id,) = prepared(store, 1, (OP1, OP2))
    (claim,), _ = store.claim(10, 60.0, first_operator)
    store.dispatch_failed(claim, "rejected", "HTTP 400: prompt too long", 2.0, fatal=True)
    job, transitions = store.job(job_id)
    assert job is not None and job.state == "FAILED" and "prompt too long" in (job.reason or "")
    assert transitions[-1].state == "FAILED"
    assert store.claim(10, 60.0, first_operator, now=time.time() + 3600) == ([], [])


def test_concurrent_claims_never_share_a_job(store_url: str) -> None:
    if not store_url.startswith("postgresql"):
        pytest.skip("several relayers share a PostgreSQL store; a SQLite store serves one relayer")
    stores = [JobStore(store_url, owner=f"relayer-{i}") for i in range(4)]
    ids = prepared(stores[0], 120)
    taken: dict[str, list[str]] = {s.owner: [] for s in stores}
    start = threading.Barrier(len(stores))

    def work(store: JobStore) -> None:
        start.wait()
        while True:
            claims, _ = store.claim(7, 600.0, first_operator)
            if not claims:
                return
            taken[store.owner] += [c.job_id for c in claims]

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [j for got in taken.values() for j in got]
    assert sorted(everything) == sorted(ids)  # each job claimed exactly once
    assert sum(1 for got in taken.values() if got) >= 2  # and the work was shared
    assert stores[0].dispatch_count() == len(ids)


def test_the_leader_lease_is_held_by_one_relayer_at_a_time(store_url: str) -> None:
    a, b = JobStore(store_url, owner="relayer-a"), JobStore(store_url, owner="relayer-b")
    now = time.time()
    assert a.hold_lease("leader", 10.0, now)
    assert not b.hold_lease("leader", 10.0, now + 1)
    assert a.hold_lease("leader", 10.0, now + 5)  # renewed until now + 15
    assert not b.hold_lease("leader", 10.0, now + 14)
    assert b.hold_lease("leader", 10.0, now + 16)  # a stopped renewing: b takes over
    assert not a.hold_lease("leader", 10.0, now + 17)


# -- ingestion, reorganisations, deadlines, settlements -----------------------------------------------------


def test_ingestion_stores_rows_and_checkpoint_together_or_not_at_all(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL)], 9)
    broken = opened(2, 11)
    del broken.args["deadline"]  # fails half-way through the transaction, after job 1's rows
    with pytest.raises(KeyError):
        ingest(store, [opened(1, 10), broken], 11, (OP1,))
    assert store.checkpoint() == (9, block_hash(9))
    assert store.counts() == {}
    assert store.operators() == []
    assert [n for n, _h in store.recent_hashes()] == [9, 1]
    ingest(store, [opened(1, 10), opened(2, 11)], 11, (OP1,))
    assert store.checkpoint() == (11, block_hash(11))
    assert store.counts() == {"OPENED": 2}
    assert [o.address for o in store.operators()] == [OP1.address]


def test_rollback_forgets_unserved_jobs_and_reopens_reorganised_settlements(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ids = prepared(store, 4)  # jobs 1..4 in blocks 11..14, revealed
    ingest(store, [opened(5, 15)], 15)  # job 5: paid, never revealed
    (c1,), _ = store.claim(1, 60.0, first_operator)  # job 1 (block 11) completes and settles in block 16
    store.complete(c1, "Hi", 31, 1, "0x" + "00" * 32, 1.0)
    sid = store.begin_settlement([c1.job_id], 0, "0x" + "11" * 32, 10**9)
    store.settlement_mined(sid, "0x" + "11" * 32, 16, 60_000)
    ingest(store, [settled(1, 16)], 16)
    (c2,), _ = store.claim(1, 60.0, first_operator)  # job 2 (block 12) is in flight
    assert c2.job_id == ids[1]

    # Blocks 12 and later are replaced: the jobs that were not dispatched yet (3, 4, 5) are forgotten; job 2,
    # already sent to its operator, stays (its payment comes back in the new blocks or it expires); job 1's
    # settlement is undone, so it settles again.
    affected = store.rollback((11, block_hash(11)))
    assert affected == 4
    assert store.checkpoint() == (11, block_hash(11))
    assert set(store.counts()) == {"COMPLETED", "DISPATCHED"}
    job1 = store.job(ids[0])[0]
    assert job1 is not None and (job1.state, job1.settle_tx, job1.charge, job1.closed_block) == (
        "COMPLETED",
        None,
        None,
        None,
    )
    assert [t.state for t in store.job(ids[0])[1]][-2:] == ["SETTLED", "COMPLETED"]
    assert store.job(ids[2])[0] is None and store.job(job_hex(5))[0] is None
    assert store.job(ids[2])[1][-1].detail == "dropped by a reorganisation below 11"
    with store.session() as s:
        assert s.scalar(select(Settlement.status).where(Settlement.id == sid)) == "reorged"
        assert s.scalar(select(func.max(BlockHash.block_number))) == 11
    # The new blocks bring job 3 back (and a new job 6): ingested afresh, its reveal kept.
    result = ingest(store, [opened(3, 12, fork=1), opened(6, 13, fork=1)], 13)
    assert result.opened == 2 and result.revealed == [ids[2]]
    job3 = store.job(ids[2])[0]
    assert job3 is not None and job3.block_hash == block_hash(12, fork=1)


def test_overdue_jobs_expire_and_settled_ones_do_not(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ingest(store, [priced(1, MODEL)], 9)
    ingest(
        store, [opened(1, 10, deadline=1_000), opened(2, 11, deadline=5_000), opened(3, 12, deadline=900)], 12
    )
    store.mark([job_hex(3)], State.SETTLED, "found settled on-chain")
    assert store.expire_overdue(now=1_000, margin_s=10) == [job_hex(1)]
    job = store.job(job_hex(1))[0]
    assert job is not None and job.state == "EXPIRED"
    assert state(store, job_hex(2)) == "OPENED" and state(store, job_hex(3)) == "SETTLED"


def test_a_dropped_settlement_returns_its_jobs_to_the_queue(store_url: str) -> None:
    store = JobStore(store_url, owner="relayer-a")
    ids = prepared(store, 2)
    for claim in store.claim(10, 60.0, first_operator)[0]:
        store.complete(claim, "Hi", 31, 1, "0x" + "00" * 32, 1.0)
    sid = store.begin_settlement(ids, 3, "0x" + "33" * 32, 10**9)
    store.bump_settlement(sid, "0x" + "34" * 32, 2 * 10**9)
    (row,) = store.pending_settlements()
    assert (row.tx_hashes, row.gas_price, row.nonce) == (f"0x{'33' * 32},0x{'34' * 32}", 2 * 10**9, 3)
    store.settlement_dropped(sid, "reverted", "settlement reverted")
    assert [state(store, j) for j in ids] == ["COMPLETED", "COMPLETED"]
    assert not store.pending_settlements()
    assert [j.job_id for j in store.settleable(10)[0]] == ids

"""Two ways to take from a payer through the relayer, performed on real processes (anvil, the relayer, the
operator node), and how each fails now:

- an operator that over-reports its usage within the escrow's bounds (4,000 answer tokens and 900 prompt
  tokens claimed for a short answer to a one-line prompt): the relayer counts the tokens itself, the job
  settles at its count, and the dispute is recorded against the operator, who is passed over afterwards;
- a payer whose deadline leaves no time to settle (free inference: get the answer, then refund the job): the
  job is not dispatched, fails at once with a reason the payer sees, and no answer is handed out; and a job
  that expired unsettled does not have its answer handed out either.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bme.cli.ask import ended_unsettled
from bme.gguf.files import find_smollm2_gguf
from bme.gguf.tokenizer import GgufTokenizer
from bme.stack import LocalStack, StackConfig
from bme.user.prompt_tokens import count_prompt_tokens

from .helpers import (
    FAST_RELAYER,
    MODEL,
    FakeCompletions,
    JobFactory,
    RelayerDb,
    node_journal,
    operators_view,
    rpc,
    settled_events,
    wait_until,
)

PROMPT = "Name three colours."
#: The over-reporting operator's answer, and the usage it claims for it.
ANSWER = "Red, green and blue are three colours that people see every day."
CLAIMED = (900, 4_000)


@pytest.fixture
def over_reporting() -> Iterator[FakeCompletions]:
    """An OpenAI-compatible endpoint that answers every job at once with `ANSWER` and claims `CLAIMED` usage:
    well inside the escrow's uint32 counts and the job's reservation, so only a count of its own stops it."""
    endpoint = FakeCompletions(lambda _i: (ANSWER, *CLAIMED), model=MODEL)
    yield endpoint
    endpoint.close()


def metric(relayer_url: str, name: str, operator: str) -> float:
    text = httpx.get(relayer_url + "/metrics", timeout=10).text
    found = re.search(rf'^{name}{{operator="{operator}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_over_reported_usage_is_settled_at_the_relayers_count_and_held_against_the_operator(
    tmp_path: Path, over_reporting: FakeCompletions
) -> None:
    tokenizer = GgufTokenizer(find_smollm2_gguf())  # counted here apart from the relayer's process
    answer_tokens = tokenizer.text_tokens(ANSWER)
    prompt_tokens = count_prompt_tokens(PROMPT, MODEL).count  # the payer's quote: the user side's count
    tokenizer.close()
    assert answer_tokens < 20 and prompt_tokens < 60

    with LocalStack(StackConfig(work_dir=tmp_path, operators=2, users=2)) as st:
        liar, honest = st.operators[1].address, st.operators[0].address
        st.register_operator(1, over_reporting.url)  # alone at first: the first jobs go to it
        relayer = st.start_relayer(extra_env=FAST_RELAYER)
        db = RelayerDb(f"sqlite:///{tmp_path / 'relayer.db'}")
        wait_until("the relayer to know the operator", lambda: liar in operators_view(relayer), 30)
        # max_tokens above the claim: the request's cap alone would not stop the over-report.
        factory = JobFactory(st, relayer.url, max_tokens=4_096, prompt=PROMPT)
        factory.fund()
        first = factory.make(2)
        factory.reveal_and_pay(first)
        wait_until(
            "the over-reported jobs settled",
            lambda: set(db.states(j.job_hex for j in first).values()) == {"SETTLED"},
            60,
        )

        events = {e["job_id"]: e for e in settled_events(st)}
        escrow = st.protocol.escrow
        for job in first:
            event = events[job.job_hex]
            assert event["operator"] == liar
            assert (event["inputTokens"], event["outputTokens"]) == (prompt_tokens, answer_tokens)
            model_id = factory.model_id
            assert event["charge"] == escrow.functions.costOf(model_id, prompt_tokens, answer_tokens).call()
            assert event["charge"] < escrow.functions.costOf(model_id, *CLAIMED).call()  # what was claimed
            row = db.job(job.job_hex)
            assert row is not None
            assert (row.reported_input_tokens, row.reported_output_tokens) == CLAIMED
            completed = [d for s, _, _, d in db.transitions(job.job_hex) if s == "COMPLETED"]
            assert completed and "usage disputed (input, output over-reported)" in (completed[-1] or "")
            # The payer sees both figures.
            body = factory.clients[job.user.address].status(job.prepared.job_id)
            assert (body["input_tokens"], body["output_tokens"]) == (prompt_tokens, answer_tokens)
            assert (body["reported_input_tokens"], body["reported_output_tokens"]) == CLAIMED
            assert body["answer"] == ANSWER
        assert operators_view(relayer)[liar]["usage_disputes"] == 2
        assert metric(relayer.url, "bme_relayer_usage_disputes_total", liar) == 2
        not_settled = 2 * (sum(CLAIMED) - prompt_tokens - answer_tokens)
        assert metric(relayer.url, "bme_relayer_reported_tokens_not_settled_total", liar) == not_settled

        # An honest node joins: its counts stand, and the disputed operator is passed over as a failing one.
        called_before = over_reporting.calls
        st.start_node(0)
        wait_until("the relayer to know the node", lambda: honest in operators_view(relayer), 30)
        small = JobFactory(st, relayer.url, max_tokens=16, prompt=PROMPT)
        later = small.make(4)
        small.reveal_and_pay(later)
        wait_until(
            "the honest node's jobs settled",
            lambda: set(db.states(j.job_hex for j in later).values()) == {"SETTLED"},
            120,
        )
        events = {e["job_id"]: e for e in settled_events(st)}
        assert {events[j.job_hex]["operator"] for j in later} == {honest}
        assert over_reporting.calls == called_before
        for job in later:
            row = db.job(job.job_hex)
            assert row is not None and row.input_tokens == row.reported_input_tokens == prompt_tokens
            assert 0 < row.output_tokens <= row.reported_output_tokens <= 16
            assert row.reported_output_tokens - row.output_tokens <= 2
        assert operators_view(relayer)[honest]["usage_disputes"] == 0
        assert len(node_journal(st, 0).answers) == len(later)
        db.close()
        small.close()
        factory.close()


def test_a_job_whose_deadline_leaves_no_time_to_settle_is_not_dispatched(tmp_path: Path) -> None:
    """The free-inference attempt: pay with a deadline 10 s away (settlement needs 30 s), hoping to read the
    answer and then refund the job. The job fails at once, no operator is called, and no answer exists. (The
    escrow refuses such a deadline under its default shortest job duration of 10 minutes; this stack lowers
    it to 5 s, as governance may, to show the relayer's own defence.)"""
    with LocalStack(StackConfig(work_dir=tmp_path, operators=1, users=1, min_job_duration=5)) as st:
        st.start_node(0)
        relayer = st.start_relayer(extra_env=FAST_RELAYER)
        db = RelayerDb(f"sqlite:///{tmp_path / 'relayer.db'}")
        wait_until("the relayer to know the node", lambda: operators_view(relayer), 30)
        factory = JobFactory(st, relayer.url, max_tokens=8, prompt=PROMPT, duration_s=10)
        factory.fund()
        [job] = factory.make(1)
        factory.reveal_and_pay([job])
        wait_until("the job to fail", lambda: db.states([job.job_hex]).get(job.job_hex) == "FAILED", 5)

        client = factory.clients[job.user.address]
        body = client.status(job.prepared.job_id)
        assert body["state"] == "FAILED" and body["answer"] is None
        # Refused when it is claimed; the leader's sweep of jobs nobody can serve in time (every 2 s) may come
        # first, with its own reason: either way no operator is called.
        reason = body["reason"]
        assert reason.startswith(("not dispatched: its deadline is", "no operator served it in time")), reason
        assert "settlement needs 30 s" in reason
        assert db.attempts()[job.job_hex] == 0
        assert not node_journal(st, 0).arrivals and not node_journal(st, 0).answers
        told = ended_unsettled(body, job.job_hex, "the reservation")
        assert told.startswith(f"the job ended FAILED: {reason.rstrip('.')}.")
        assert f"`bme refund {job.job_hex}`" in told
        db.close()
        factory.close()


def test_the_answer_of_a_job_that_expired_unsettled_is_not_handed_out(tmp_path: Path) -> None:
    """A job answered whose settlement is held back (a batch that never fills): its answer is handed out while
    a settlement can still make the deadline, withheld once it no longer can, and after the job expired."""
    slow_settling = {**FAST_RELAYER, "BME_RELAYER_BATCH_AGE_S": "100000", "BME_RELAYER_BATCH_SIZE": "500"}
    with LocalStack(StackConfig(work_dir=tmp_path, operators=1, users=1, price_interval_s=0)) as st:
        st.start_node(0)
        relayer = st.start_relayer(extra_env=slow_settling)
        db = RelayerDb(f"sqlite:///{tmp_path / 'relayer.db'}")
        wait_until("the relayer to know the node", lambda: operators_view(relayer), 30)
        factory = JobFactory(st, relayer.url, max_tokens=8, prompt=PROMPT, duration_s=900)
        factory.fund()
        [job] = factory.make(1)
        factory.reveal_and_pay([job])
        wait_until("the answer", lambda: db.states([job.job_hex]).get(job.job_hex) == "COMPLETED", 60)
        client = factory.clients[job.user.address]
        answered = client.status(job.prepared.job_id)
        assert answered["answer"] and answered["answer_withheld"] is None  # settleable: handed out

        def chain_moves_to(seconds_before_deadline: int) -> None:
            row = db.job(job.job_hex)
            assert row is not None
            now = int(rpc(st.anvil.url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            rpc(st.anvil.url, "evm_increaseTime", [row.deadline - seconds_before_deadline - now])
            rpc(st.anvil.url, "evm_mine")

        chain_moves_to(10)  # a settlement (30 s) could no longer make the deadline
        near = wait_until(
            "the answer withheld",
            lambda: (b := client.status(job.prepared.job_id))["answer_withheld"] and b,
            10,
        )
        assert near["state"] == "COMPLETED" and near["answer"] is None
        assert "handed out only if it settles" in near["answer_withheld"]

        chain_moves_to(-5)  # past the deadline: the relayer expires it
        wait_until("the job expired", lambda: db.states([job.job_hex]).get(job.job_hex) == "EXPIRED", 10)
        expired = client.status(job.prepared.job_id)
        assert expired["answer"] is None and "without a settlement" in expired["answer_withheld"]
        assert db.job(job.job_hex).answer == answered["answer"]  # the relayer has it, and keeps it
        assert settled_events(st) == []
        told = ended_unsettled(expired, job.job_hex, "the reservation")
        assert "withholds the answer of an unsettled job" in told
        db.close()
        factory.close()

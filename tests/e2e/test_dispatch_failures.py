"""The relayer tells an operator that cannot be reached from one that answers with an error.

Two registered operators serve the model: one node's process is killed (its calls find nobody: *unreachable*,
with the connection error), the other runs but its upstream server is down, so it answers 502 with an
OpenAI-style error body (*answered error 502* and the body's message). A paid job uses up its three tries on
the answering one; the unreachable one never uses up a try (it might be back in a moment) but is tried again
later and later, until a settlement could no longer make the job's deadline: then the job fails at once. Its
history and each operator's record at GET /v1/operators say which kind each failure was."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx

from bme.chain.deploy import SMOLLM2
from bme.chain.devnet import free_port
from bme.stack import LocalStack, StackConfig
from bme.user.jobs import JobsClient

from .test_stack_watch import upstream_node

#: The job is paid with 30 s to its deadline and a settlement needs 20 s: it can wait 10 s for an operator.
#: (The stack's escrow lets a job be that short: its shortest job duration is set to 10 s.)
DURATION_S = 30
FAST = {
    "BME_RELAYER_BATCH_AGE_S": "0.2",
    "BME_RELAYER_POLL_INTERVAL_S": "0.2",
    "BME_RELAYER_DEADLINE_MARGIN_S": "20",
}


def test_unreachable_and_answered_errors_are_told_apart(tmp_path: Path) -> None:
    config = StackConfig(work_dir=tmp_path, operators=2, price_interval_s=0, min_job_duration=10)
    with LocalStack(config) as st:
        answering = st.start_node(0, extra_env=upstream_node(free_port()))  # its upstream: nothing listens
        gone = st.start_node(1, extra_env=upstream_node(free_port()))
        gone.stop(signal.SIGKILL)  # registered, then its process killed
        relayer = st.start_relayer(extra_env=FAST)
        client = JobsClient(st.protocol, st.users[0], relayer.url)
        job = client.prepare(SMOLLM2.name, "Anyone there?", max_tokens=4)
        client.reveal(job)
        # A block now, so that the deadline counts from the chain's present time, not from its last block's
        # (the chain is idle while the nodes start: its latest block can be seconds old).
        st.push_price()
        paid = time.monotonic()
        client.pay(job, duration_s=DURATION_S)
        body = client.wait(job.job_id, timeout=60)
        failed_after = time.monotonic() - paid
        operators = {o["address"]: o for o in httpx.get(f"{relayer.url}/v1/operators", timeout=10).json()}
        client.close()

    assert body["state"] == "FAILED", body
    assert body["reason"].startswith("no operator served it in time to settle before its deadline"), body
    assert 8 < failed_after < 16, f"failed {failed_after:.1f} s after the payment, not when 10 s were left"
    up, down = st.operators[0].address, st.operators[1].address
    retries = [h["detail"] for h in body["history"] if h["state"] == "REVEALED" and h["detail"]]
    answered = [d for d in retries if d.startswith(f"{up}: answered error 502: ")]
    unreachable = [d for d in retries if d.startswith(f"{down}: unreachable: ")]
    assert len(answered) == 3 and len(answered) + len(unreachable) == len(retries), retries
    assert all(d.endswith("; to be dispatched again") for d in answered)
    assert "upstream" in answered[0].lower()  # the message of the node's error body
    assert "connect" in unreachable[0].lower()  # the connection error
    # The unreachable operator is tried again and again, each time after twice the wait: 0.25 s, 0.5 s, ...
    waits = [float(re.fullmatch(r".*; to be dispatched again in ([0-9.]+) s", d)[1]) for d in unreachable]
    assert len(waits) >= 4 and waits[:4] == [0.25, 0.5, 1, 2], waits

    assert (operators[up]["answered_errors"], operators[up]["unreachable"]) == (3, 0)
    assert operators[down]["answered_errors"] == 0 and operators[down]["unreachable"] == len(unreachable)
    assert operators[up]["last_error"].startswith("answered error 502: ")
    assert operators[down]["last_error"].startswith("unreachable: ")
    assert answering.url in operators[up]["endpoint"]


def test_a_node_down_for_a_moment_costs_the_job_a_wait_not_its_tries(tmp_path: Path) -> None:
    """The only operator's node is down when a job is paid and comes back 3 s later on the same port: the job
    waits (0.25 s, 0.5 s, 1 s, 2 s between tries), is served when the node is back, and settles."""
    with LocalStack(StackConfig(work_dir=tmp_path, price_interval_s=0)) as st:
        port = free_port()
        st.start_node(0, port=port).stop(signal.SIGKILL)  # registered, then its process killed
        relayer = st.start_relayer(extra_env=FAST)
        client = JobsClient(st.protocol, st.users[0], relayer.url)
        job = client.prepare(SMOLLM2.name, "Say hello.", max_tokens=4)
        client.reveal(job)
        client.pay(job)
        time.sleep(3)
        st.start_node(0, port=port)  # back, with the embedded model loaded
        body = client.wait(job.job_id, timeout=60)
        client.close()

    assert body["state"] == "SETTLED", body
    down = st.operators[0].address
    retries = [h["detail"] for h in body["history"] if h["state"] == "REVEALED" and h["detail"]]
    assert len(retries) >= 3, retries  # more calls than the 3 tries an operator has
    assert all(
        re.fullmatch(rf"{down}: unreachable: .*; to be dispatched again in [0-9.]+ s", d) for d in retries
    )

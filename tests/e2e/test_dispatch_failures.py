"""The relayer tells an operator that cannot be reached from one that answers with an error.

Two registered operators serve the model: one node's process is killed (its calls find nobody: *unreachable*,
with the connection error), the other runs but its upstream server is down, so it answers 502 with an
OpenAI-style error body (*answered error 502* and the body's message). A paid job tries both, three times
each, and fails; its history and each operator's record at GET /v1/operators say which kind each was."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from bme.chain.deploy import SMOLLM2
from bme.chain.devnet import free_port
from bme.stack import LocalStack, StackConfig
from bme.user.jobs import JobsClient

from .test_stack_watch import upstream_node

FAST = {"BME_RELAYER_BATCH_AGE_S": "0.2", "BME_RELAYER_POLL_INTERVAL_S": "0.2"}


def test_unreachable_and_answered_errors_are_told_apart(tmp_path: Path) -> None:
    with LocalStack(StackConfig(work_dir=tmp_path, operators=2, price_interval_s=0)) as st:
        answering = st.start_node(0, extra_env=upstream_node(free_port()))  # its upstream: nothing listens
        gone = st.start_node(1, extra_env=upstream_node(free_port()))
        gone.stop(signal.SIGKILL)  # registered, then its process killed
        relayer = st.start_relayer(extra_env=FAST)
        client = JobsClient(st.protocol, st.users[0], relayer.url)
        job = client.prepare(SMOLLM2.name, "Anyone there?", max_tokens=4)
        client.reveal(job)
        client.pay(job)
        body = client.wait(job.job_id, timeout=60)
        operators = {o["address"]: o for o in httpx.get(f"{relayer.url}/v1/operators", timeout=10).json()}
        client.close()

    assert body["state"] == "FAILED", body
    assert body["reason"] == "every operator serving model 1 failed it 3 times"
    up, down = st.operators[0].address, st.operators[1].address
    retries = [h["detail"] for h in body["history"] if h["state"] == "REVEALED" and h["detail"]]
    assert len(retries) == 6, body["history"]
    for detail in retries:
        assert detail.endswith("; to be dispatched again")
    answered = [d for d in retries if d.startswith(f"{up}: answered error 502: ")]
    unreachable = [d for d in retries if d.startswith(f"{down}: unreachable: ")]
    assert len(answered) == 3 and len(unreachable) == 3, retries
    assert "upstream" in answered[0].lower()  # the message of the node's error body
    assert "connect" in unreachable[0].lower()  # the connection error

    assert (operators[up]["answered_errors"], operators[up]["unreachable"]) == (3, 0)
    assert (operators[down]["answered_errors"], operators[down]["unreachable"]) == (0, 3)
    assert operators[up]["last_error"].startswith("answered error 502: ")
    assert operators[down]["last_error"].startswith("unreachable: ")
    assert answering.url in operators[up]["endpoint"]

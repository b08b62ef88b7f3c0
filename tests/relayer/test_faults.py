"""Faults around a running relayer: an operator whose endpoint refuses connections, an operator node that
hangs (SIGSTOP) past the dispatch timeout, and a chain that stops answering (anvil SIGSTOPped) while jobs
flow. The relayer retries on another operator, records the failures (GET /v1/operators), recovers, and
loses or repeats nothing: each job is settled exactly once, with the answer of the operator it names."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bme.chain.devnet import free_port
from bme.commitment import result_hash
from bme.stack import LocalStack, Process, StackConfig

from .helpers import (
    FAST_RELAYER,
    JobFactory,
    PaidJob,
    RelayerDb,
    node_journal,
    operators_view,
    pause,
    read_journal,
    resume,
    settled_events,
    wait_until,
)

DISPATCH_TIMEOUT_S = 2
RPC_TIMEOUT_S = 4  # the chain outage below lasts longer than this


@dataclass
class Faulty:
    stack: LocalStack
    relayer: Process
    nodes: dict[int, Process]
    db: RelayerDb
    factory: JobFactory
    work: Path

    def operator(self, index: int) -> str:
        return self.stack.operators[index].address

    def settled(self, jobs: list[PaidJob]) -> bool:
        states = self.db.states(j.job_hex for j in jobs)
        return len(states) == len(jobs) and set(states.values()) == {"SETTLED"}

    def check_settled_once_with_the_operators_answer(self, jobs: list[PaidJob]) -> dict[str, int]:
        """Each job settled once on-chain, naming an operator whose node ran it and whose answer it hashes;
        returns how many jobs each operator served."""
        events = {
            e["job_id"]: e for e in settled_events(self.stack) if e["job_id"] in {j.job_hex for j in jobs}
        }
        assert len(events) == len(jobs)
        counts = {e["job_id"]: 0 for e in events.values()}
        for e in settled_events(self.stack):
            if e["job_id"] in counts:
                counts[e["job_id"]] += 1
        assert set(counts.values()) == {1}
        answers: dict[str, dict[str, Any]] = {}
        for index in self.nodes:
            path = self.work / f"node-{index}-journal.jsonl"
            for line in path.read_text().splitlines() if path.exists() else []:
                record = json.loads(line)
                if record.get("answer") is not None:
                    answers.setdefault(self.operator(index), {})[record["job"]] = record["answer"]
        served: dict[str, int] = {}
        for job_id, e in events.items():
            operator = e["operator"]
            answer = answers.get(operator, {}).get(job_id)
            assert answer is not None, f"{job_id} settled for {operator}, whose node has no answer for it"
            assert bytes(e["resultHash"]) == result_hash(answer["choices"][0]["message"]["content"])
            served[operator] = served.get(operator, 0) + 1
        return served


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: Any) -> Iterator[Faulty]:
    """Operator 0 serves; operator 1 is registered at an endpoint where nothing listens; operator 2's node
    runs but is registered only by the test that hangs it."""
    work = tmp_path_factory.mktemp("faults")
    with LocalStack(StackConfig(work_dir=work, operators=3, users=4)) as st:
        nodes = {0: st.start_node(0), 2: st.start_node(2, register=False)}
        st.register_operator(1, f"http://127.0.0.1:{free_port()}")
        relayer = st.start_relayer(
            extra_env={
                **FAST_RELAYER,
                "BME_RELAYER_DISPATCH_TIMEOUT_S": str(DISPATCH_TIMEOUT_S),
                "BME_RELAYER_CONCURRENCY": "8",
                "BME_RELAYER_RPC_TIMEOUT_S": str(RPC_TIMEOUT_S),
            }
        )
        factory = JobFactory(st, relayer.url)
        factory.fund()
        db = RelayerDb(f"sqlite:///{work / 'relayer.db'}")
        yield Faulty(st, relayer, nodes, db, factory, work)
        for pid in (st.anvil.pid, nodes[2].popen.pid):
            if pid is not None:
                resume(pid)  # whatever a failed test left stopped
        db.close()


def test_an_unreachable_operator_is_retried_elsewhere_and_its_failures_are_shown(faulty: Faulty) -> None:
    jobs = faulty.factory.make(60)
    faulty.factory.reveal_and_pay(jobs)
    wait_until("every job settled", lambda: faulty.settled(jobs), 90)

    served = faulty.check_settled_once_with_the_operators_answer(jobs)
    assert served == {faulty.operator(0): len(jobs)}
    assert set(node_journal(faulty.stack, 0).answers.values()) == {1}
    dead = operators_view(faulty.relayer)[faulty.operator(1)]
    assert dead["failed"] >= 1 and dead["succeeded"] == 0
    assert "connect" in (dead["last_error"] or "").lower()  # connection refused
    attempts = faulty.db.attempts_by_operator()
    assert set(attempts[faulty.operator(1)]) == {"unavailable"}  # nobody listens: no try used up
    assert attempts[faulty.operator(0)]["ok"] == len(jobs)


def test_a_hung_operator_times_out_and_its_jobs_go_to_another(faulty: Faulty) -> None:
    hung = faulty.nodes[2]
    faulty.stack.register_operator(2, hung.url)
    wait_until(
        "the relayer to know operator 2", lambda: faulty.operator(2) in operators_view(faulty.relayer), 30
    )
    pause(hung.popen.pid)
    try:
        jobs = faulty.factory.make(60)
        faulty.factory.reveal_and_pay(jobs)
        wait_until("every job settled", lambda: faulty.settled(jobs), 120)
        view = operators_view(faulty.relayer)[faulty.operator(2)]
    finally:
        resume(hung.popen.pid)
    assert view["failed"] >= 1 and view["succeeded"] == 0
    assert f"no answer within {DISPATCH_TIMEOUT_S} s" in (view["last_error"] or "")
    assert faulty.db.attempts_by_operator()[faulty.operator(2)]["timeout"] >= 1
    # The hung node may still run what it received once it resumes; the settlement names the operator that
    # answered in time, with its answer.
    time.sleep(1.0)
    served = faulty.check_settled_once_with_the_operators_answer(jobs)
    assert set(served) == {faulty.operator(0)}
    late = read_journal(faulty.work / "node-2-journal.jsonl")
    assert set(late.answers) <= {j.job_hex for j in jobs}


@pytest.mark.slow
def test_the_relayer_recovers_when_the_chain_stops_answering(faulty: Faulty) -> None:
    jobs = faulty.factory.make(120)
    failure: list[BaseException] = []

    def feed() -> None:
        try:
            faulty.factory.reveal_and_pay(jobs, chunk=20)
        except BaseException as exc:
            failure.append(exc)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    wait_until("some jobs settled", lambda: faulty.db.count("SETTLED") > 0 and faulty.settled(jobs[:20]), 60)
    anvil = faulty.stack.anvil.pid
    pause(anvil)  # longer than the relayer's RPC timeout: its calls fail, not just wait
    try:
        time.sleep(RPC_TIMEOUT_S + 2)
        ready = httpx.get(faulty.relayer.url + "/readyz", timeout=10)
    finally:
        resume(anvil)
    assert ready.status_code in (200, 503)  # the API answers while the chain does not
    feeder.join(120)
    assert not failure, failure
    wait_until("every job settled", lambda: faulty.settled(jobs), 120)
    served = faulty.check_settled_once_with_the_operators_answer(jobs)
    assert sum(served.values()) == len(jobs)
    metrics = httpx.get(faulty.relayer.url + "/metrics", timeout=10).text
    errors = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("bme_relayer_rpc_errors_total")
    ]
    assert sum(errors) > 0  # the outage was seen, and survived

"""Two relayer processes sharing one PostgreSQL store (different instance names): they split the dispatch
work without ever taking the same job, one of them (the leader) ingests and settles, and when the leader
is SIGKILLed the other takes over ingestion and settlement. Nothing is lost, dispatched twice or settled
twice."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bme.devnet_ops import rpc
from bme.stack import LocalStack, StackConfig

from .helpers import (
    FAST_RELAYER,
    JobFactory,
    PaidJob,
    RelayerDb,
    chain_events,
    node_health,
    node_journal,
    wait_until,
)

SHARED_JOBS = 200
FAILOVER_JOBS = 100
DISPATCH_TIMEOUT_S = 5


@pytest.mark.slow
def test_two_relayers_share_one_postgres_and_the_survivor_takes_over(
    tmp_path: Path, postgres_url: str
) -> None:
    started = time.monotonic()
    with LocalStack(StackConfig(work_dir=tmp_path, users=4)) as st:
        node = st.start_node(0)
        env = {
            **FAST_RELAYER,
            "BME_RELAYER_DISPATCH_TIMEOUT_S": str(DISPATCH_TIMEOUT_S),
            "BME_RELAYER_CONCURRENCY": "16",  # neither relayer can take the whole queue at once
        }
        relayers = {
            name: st.start_relayer(instance=name, database_url=postgres_url, extra_env=env)
            for name in ("relayer-a", "relayer-b")
        }
        db = RelayerDb(postgres_url)
        # Half the users reveal through one relayer's API, half through the other's.
        factories = [
            JobFactory(st, relayers["relayer-a"].url, users=st.users[:2]),
            JobFactory(st, relayers["relayer-b"].url, users=st.users[2:]),
        ]
        for f in factories:
            f.fund()

        def settled(jobs: list[PaidJob]) -> bool:
            states = db.states(j.job_hex for j in jobs)
            return len(states) == len(jobs) and set(states.values()) == {"SETTLED"}

        def feed(jobs: list[PaidJob], failure: list[BaseException]) -> None:
            try:
                for start in range(0, len(jobs), 20):
                    part = jobs[start : start + 20]
                    for job in part:
                        factories[0 if job.user in factories[0].users else 1].reveal(job)
                    for f in factories:
                        f.pay([j for j in part if j.user in f.users])
            except BaseException as exc:
                failure.append(exc)

        # Both relayers at work: the dispatches are split, each job taken once.
        shared = [
            j
            for pair in zip(
                factories[0].make(SHARED_JOBS // 2), factories[1].make(SHARED_JOBS // 2), strict=True
            )
            for j in pair
        ]
        failure: list[BaseException] = []
        # Paid in a few blocks at once, so that the leader ingests a queue larger than it can take: both
        # relayers then have work to claim, however fast the node answers on this machine.
        rpc(st.client, "evm_setAutomine", [False])
        try:
            feed(shared, failure)
        finally:
            rpc(st.client, "anvil_mine", [hex(3)])  # 200 payments need more gas than one block holds
            rpc(st.client, "evm_setAutomine", [True])
        assert not failure, failure
        assert not factories[0].unmined(shared), "payments left in anvil's pool"
        wait_until(f"{SHARED_JOBS} jobs settled", lambda: settled(shared), 120, 0.5)
        attempts = db.attempts()
        assert all(attempts[j.job_hex] == 1 for j in shared)
        dispatchers = Counter(db.transitions_by("DISPATCHED")[j.job_hex] for j in shared)
        assert set(dispatchers) == {"relayer-a", "relayer-b"}, dispatchers
        leader = db.leader()
        assert leader in relayers
        survivor = next(name for name in relayers if name != leader)
        assert set(db.transitions_by("SETTLING").values()) == {leader}  # only the leader settles

        # The leader dies while jobs flow: the survivor takes the lease, ingests, settles, and re-sends what
        # the dead one had in flight once its row leases run out (the node answers those from its journal).
        later = [
            j
            for pair in zip(
                factories[0].make(FAILOVER_JOBS // 2), factories[1].make(FAILOVER_JOBS // 2), strict=True
            )
            for j in pair
        ]
        factories[0].set_client_url(relayers[survivor].url)  # the dead relayer's API is gone with it
        factories[1].set_client_url(relayers[survivor].url)
        feeder = threading.Thread(target=feed, args=(later, failure), daemon=True)
        feeder.start()
        wait_until("the new jobs flowing", lambda: db.count("SETTLED") >= SHARED_JOBS + 10, 60, 0.05)
        relayers[leader].stop(signal.SIGKILL)
        killed_at = time.time()
        wait_until("the survivor to lead", lambda: db.leader() == survivor, 30)
        feeder.join(120)
        assert not failure, failure
        wait_until(f"{FAILOVER_JOBS} more jobs settled", lambda: settled(later), 180, 0.5)
        took_over = time.time() - killed_at

        everything = {j.job_hex for j in shared + later}
        opened, settled_events = chain_events(st, "JobOpened"), chain_events(st, "JobSettled")
        assert set(opened) == everything and set(opened.values()) == {1}
        assert set(settled_events) == everything and set(settled_events.values()) == {1}
        journal = node_journal(st, 0)
        assert set(journal.answers) == everything and set(journal.answers.values()) == {1}
        assert node_health(node)["jobs_executed"] == len(everything)
        settlers = db.transitions_by("SETTLED")
        assert survivor in {settlers[j.job_hex] for j in later}
        cp = db.store.checkpoint()
        assert cp is not None and cp[0] >= int(st.client.w3.eth.block_number) - 1
        attempts = db.attempts()
        print(
            f"\n{len(everything)} jobs on two relayers sharing PostgreSQL: dispatches {dict(dispatchers)}; "
            f"leader {leader} killed, {survivor} finished the work {took_over:.1f} s later; "
            f"{sum(attempts.values()) - len(everything)} repeated calls; {time.monotonic() - started:.1f} s"
        )
        db.close()

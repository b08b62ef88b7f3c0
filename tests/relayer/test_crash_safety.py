"""Crash safety: the relayer is SIGKILLed at seeded random points of a 1,000-job run and restarted each time
(same instance name, same database). Every job ends settled exactly once, ran on the node exactly once, and
none is lost (DESIGN.md invariant 4)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from bme.chain.devnet import free_port
from bme.stack import LocalStack, StackConfig

from .helpers import (
    FAST_RELAYER,
    JobFactory,
    RelayerDb,
    chain_events,
    node_health,
    node_journal,
    wait_until,
)

JOBS = 1_000
SEED = int(os.environ.get("BME_TEST_SEED", "20251123"))
MIN_KILLS = 6
MAX_KILLS = 10


@pytest.mark.slow
def test_relayer_killed_at_random_points_settles_each_job_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    with LocalStack(StackConfig(work_dir=tmp_path, users=4)) as st:
        node = st.start_node(0)
        port = free_port()
        env = {**FAST_RELAYER, "BME_RELAYER_DISPATCH_TIMEOUT_S": "20"}
        relayer = st.start_relayer(port=port, extra_env=env)
        db = RelayerDb(f"sqlite:///{tmp_path / 'relayer.db'}")
        factory = JobFactory(st, relayer.url)
        factory.fund()
        jobs = factory.make(JOBS)
        ids = {j.job_hex for j in jobs}

        failure: list[BaseException] = []

        def feed() -> None:
            try:
                factory.reveal_and_pay(jobs, chunk=50)
            except BaseException as exc:
                failure.append(exc)

        feeder = threading.Thread(target=feed, name="feeder", daemon=True)
        feeder.start()

        # Kill at random times, or the moment the store shows a job in flight to the node or a settlement
        # written ahead of its transaction: the windows where a crash could lose or repeat work.
        kills: list[str] = []
        while len(kills) < MAX_KILLS and (
            feeder.is_alive() or len(kills) < MIN_KILLS or db.count("SETTLED") < JOBS
        ):
            if db.count("SETTLED") >= JOBS:
                break
            mode = rng.choice(["time", "time", "dispatched", "settling"])
            if mode == "time":
                time.sleep(rng.uniform(0.2, 3.0))
            else:
                state = "DISPATCHED" if mode == "dispatched" else "SETTLING"
                deadline = time.monotonic() + 5.0
                while db.count(state) == 0 and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.02))
            relayer.stop(signal.SIGKILL)
            kills.append(mode)
            time.sleep(rng.uniform(0.0, 0.5))
            relayer = st.start_relayer(port=port, extra_env=env)

        feeder.join(timeout=300)
        assert not failure, failure
        factory.wait_mined(jobs)
        wait_until(f"all {JOBS} jobs settled", lambda: db.count("SETTLED") == JOBS, timeout=240, interval=0.5)
        elapsed = time.monotonic() - started

        # The chain: every payment is there once, and each job was settled exactly once.
        opened = chain_events(st, "JobOpened")
        assert set(opened) == ids and set(opened.values()) == {1}
        settled = chain_events(st, "JobSettled")
        assert set(settled) == ids
        assert set(settled.values()) == {1}, {j: n for j, n in settled.items() if n != 1}

        # The node: each job's inference ran once; calls repeated after a crash were answered from its
        # journal.
        journal = node_journal(st, 0)
        assert set(journal.answers) == ids
        assert set(journal.answers.values()) == {1}
        health = node_health(node)
        assert health["jobs_executed"] == JOBS

        # The relayer's own record agrees: one SETTLED transition per job.
        states = db.states()
        assert set(states) == ids and set(states.values()) == {"SETTLED"}
        assert set(db.transition_counts("SETTLED").values()) == {1}
        attempts = db.attempts()
        print(
            f"\n{JOBS} jobs, {len(kills)} SIGKILLs ({', '.join(kills)}), seed {SEED}: {elapsed:.1f} s; "
            f"operator calls per job up to {max(attempts.values())}, "
            f"{sum(attempts.values()) - JOBS} repeated calls, "
            f"{health['jobs_replayed']} answered from the journal"
        )
        db.close()
        factory.close()

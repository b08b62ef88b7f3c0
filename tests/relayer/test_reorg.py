"""Chain reorganisations under a running relayer (confirmation depth 3), made with anvil's `anvil_reorg`.

- Within the confirmation depth: payments only in the replaced blocks are never ingested, so never dispatched;
  payments in the new blocks are dispatched and settled.
- Deeper than the confirmation depth, after ingestion, dispatch and settlement: the relayer rolls back to the
  common ancestor; a job paid only in the dropped blocks is forgotten (never dispatched); a job whose payment
  comes back in the new blocks is settled again on the new chain from the answer it already has (its inference
  does not run twice); a job paid in the new blocks is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bme.stack import LocalStack, Process, StackConfig

from .helpers import (
    FAST_RELAYER,
    JobFactory,
    PaidJob,
    RelayerDb,
    chain_events,
    node_journal,
    rpc,
    wait_until,
)

CONFIRMATIONS = 3


class Chain:
    """The devnet's blocks, through JSON-RPC."""

    def __init__(self, url: str) -> None:
        self.url = url

    def head(self) -> int:
        return int(rpc(self.url, "eth_blockNumber"), 16)

    def mine(self, blocks: int) -> None:
        rpc(self.url, "anvil_mine", [blocks])

    def reorg(self, depth: int, txs: list[tuple[PaidJob, int]]) -> None:
        """Replaces the last `depth` blocks with as many new ones carrying `txs` (job, block offset)."""
        rpc(self.url, "anvil_reorg", [depth, [[j.raw_tx, offset] for j, offset in txs]])

    def block_of(self, job: PaidJob) -> int | None:
        receipt = rpc(self.url, "eth_getTransactionReceipt", [job.tx_hash])
        return None if receipt is None else int(receipt["blockNumber"], 16)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: Any) -> Iterator[tuple[LocalStack, Process, Process, RelayerDb, Path]]:
    work = tmp_path_factory.mktemp("reorg")
    with LocalStack(StackConfig(work_dir=work, users=5, price_interval_s=0)) as st:
        node = st.start_node(0)
        relayer = st.start_relayer(
            extra_env={**FAST_RELAYER, "BME_RELAYER_CONFIRMATIONS": str(CONFIRMATIONS)}
        )
        db = RelayerDb(f"sqlite:///{work / 'relayer.db'}")
        yield st, node, relayer, db, work
        db.close()


def settled_in_db(db: RelayerDb, jobs: list[PaidJob]) -> bool:
    states = db.states(j.job_hex for j in jobs)
    return len(states) == len(jobs) and set(states.values()) == {"SETTLED"}


def test_payments_replaced_within_the_confirmation_depth_are_never_dispatched(devnet: Any) -> None:
    st, _node, relayer, db, _work = devnet
    chain = Chain(st.anvil.url)
    dropped_payer = JobFactory(st, relayer.url, users=[st.users[0]])
    new_payer = JobFactory(st, relayer.url, users=[st.users[1]])
    for f in (dropped_payer, new_payer):
        f.fund(11 * 10**18)
    dropped, kept = dropped_payer.make(3), new_payer.make(3)
    for job in dropped:
        dropped_payer.reveal(job)
    for job in kept:
        new_payer.reveal(job)

    chain.mine(CONFIRMATIONS + 1)  # the relayer has ingested everything so far
    wait_until("the relayer to catch up", lambda: _checkpoint(db) >= chain.head() - CONFIRMATIONS, 30)
    before = chain.head()
    dropped_payer.pay(dropped)
    depth = chain.head() - before
    assert 1 <= depth <= CONFIRMATIONS  # not yet confirmed
    chain.reorg(depth, [(job, depth - 1) for job in kept])  # (a payer's nonces in order)
    assert all(chain.block_of(j) is None for j in dropped)
    assert all(chain.block_of(j) is not None for j in kept)
    chain.mine(CONFIRMATIONS)

    wait_until("the new blocks' jobs settled", lambda: settled_in_db(db, kept), 60)
    assert db.states(j.job_hex for j in dropped) == {}
    journal = node_journal(st, 0)
    assert not {j.job_hex for j in dropped} & (set(journal.arrivals) | set(journal.answers))
    opened, settled = chain_events(st, "JobOpened"), chain_events(st, "JobSettled")
    for job in dropped:
        assert opened[job.job_hex] == 0 and settled[job.job_hex] == 0
    for job in kept:
        assert opened[job.job_hex] == 1 and settled[job.job_hex] == 1
        assert journal.answers[job.job_hex] == 1
        status = new_payer.clients[job.user.address].status(job.prepared.job_id)
        assert status["state"] == "SETTLED"
    for job in dropped:  # revealed, but its payment is not on the chain: it waits, never served
        assert dropped_payer.clients[job.user.address].status(job.prepared.job_id)["state"] == "PENDING"


def test_a_reorganisation_deeper_than_the_confirmations_rolls_the_relayer_back(devnet: Any) -> None:
    st, _node, relayer, db, _work = devnet
    chain = Chain(st.anvil.url)
    # One payer each for the served jobs, the unrevealed one and the fresh ones: nonces independent.
    payers = [JobFactory(st, relayer.url, users=[st.users[i]]) for i in (2, 3, 4)]
    for f in payers:
        f.fund(11 * 10**18)
    served, unrevealed, fresh = payers[0].make(2), payers[1].make(1), payers[2].make(2)
    for job in served:
        payers[0].reveal(job)
    for job in fresh:
        payers[2].reveal(job)
    chain.mine(CONFIRMATIONS + 1)
    wait_until("the relayer to catch up", lambda: _checkpoint(db) >= chain.head() - CONFIRMATIONS, 30)
    ancestor = chain.head()

    # Paid, confirmed, ingested; two of them dispatched, answered and settled.
    payers[0].pay(served)
    payers[1].pay(unrevealed)
    chain.mine(CONFIRMATIONS)
    wait_until("the revealed jobs settled", lambda: settled_in_db(db, served), 60)
    chain.mine(CONFIRMATIONS)
    wait_until("the settlement ingested", lambda: _checkpoint(db) >= chain.head() - CONFIRMATIONS, 30)
    assert db.states([unrevealed[0].job_hex]) == {unrevealed[0].job_hex: "OPENED"}
    assert all(chain_events(st, "JobSettled")[j.job_hex] == 1 for j in served)

    # Every block since the ancestor is replaced: the served jobs' payments come back (not their settlement),
    # the unrevealed job's payment does not, and the new blocks carry two fresh payments.
    depth = chain.head() - ancestor
    assert depth > CONFIRMATIONS
    chain.reorg(depth, [(served[0], 0), (served[1], 0), (fresh[0], 1), (fresh[1], 2)])
    assert chain.block_of(unrevealed[0]) is None
    assert all(chain_events(st, "JobSettled")[j.job_hex] == 0 for j in served)
    chain.mine(CONFIRMATIONS)

    wait_until("every job on the new chain settled", lambda: settled_in_db(db, served + fresh), 90)
    wait_until("the unrevealed job forgotten", lambda: db.states([unrevealed[0].job_hex]) == {}, 30)
    settled = chain_events(st, "JobSettled")
    assert all(settled[j.job_hex] == 1 for j in served + fresh)
    assert settled[unrevealed[0].job_hex] == 0
    journal = node_journal(st, 0)
    assert all(journal.answers[j.job_hex] == 1 for j in served + fresh)  # served jobs did not run again
    assert unrevealed[0].job_hex not in journal.arrivals
    history = [t[0] for t in db.transitions(served[0].job_hex)]
    assert history.count("DISPATCHED") == 1 and history.count("COMPLETED") == 2
    assert any(d and "reorganised away" in d for _s, _at, _by, d in db.transitions(served[0].job_hex))


def _checkpoint(db: RelayerDb) -> int:
    cp = db.store.checkpoint()
    return -1 if cp is None else cp[0]

"""Settlement records: a settlement transaction is written (nonce, hash, jobs) before it is sent, so that a
restarted relayer knows what may be in flight; then it is mined, dropped or bumped."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Row

from bme.job_states import JobState
from bme.relayer.store.base import JOBS, RECORD_SETTLEMENT, SETTLEMENTS, JobRow, StoreBase

_S = JobState
#: Why a completed job waits at the back of the settlement queue.
NOT_ON_CHAIN = "its payment is not on the chain (reorganised)"
_SETTLEABLE = (
    select(JOBS)
    .where(JOBS.c.state == _S.COMPLETED.value)
    .order_by(JOBS.c.completed_at)
    .limit(bindparam("limit"))
)
_PENDING = select(SETTLEMENTS).where(SETTLEMENTS.c.status == "pending").order_by(SETTLEMENTS.c.id)
_OF_SETTLEMENT = select(JOBS).where(JOBS.c.settlement_id == bindparam("sid"))
_SETTLING_IDS = select(JOBS.c.job_id).where(
    JOBS.c.settlement_id == bindparam("sid"), JOBS.c.state == _S.SETTLING.value
)


class SettlementStore(StoreBase):
    def settleable(self, limit: int) -> tuple[list[JobRow], float | None]:
        """Completed jobs in completion order, and when the oldest of them completed."""
        with self.engine.connect() as c:
            jobs = list(c.execute(_SETTLEABLE, {"limit": limit}).all())
            return jobs, (jobs[0].completed_at if jobs else None)

    def begin_settlement(self, job_ids: Sequence[str], nonce: int, tx_hash: str, gas_price: int) -> int:
        """Records a settlement about to be sent and moves its jobs to SETTLING; returns its id."""
        now = time.time()
        with self.writing() as c:
            self._check_fence(c)
            sid = c.execute(
                insert(SETTLEMENTS),
                {
                    "nonce": nonce,
                    "tx_hashes": tx_hash,
                    "gas_price": gas_price,
                    "jobs": len(job_ids),
                    "status": "pending",
                    "sent_at": now,
                },
            ).inserted_primary_key
            assert sid is not None
            detail = f"nonce {nonce} tx {tx_hash}"
            values = {"settlement_id": int(sid[0])}
            self.move(c, job_ids, _S.SETTLING, now, detail, values=values, sources=[_S.COMPLETED])
            return int(sid[0])

    def bump_settlement(self, settlement_id: int, tx_hash: str, gas_price: int) -> None:
        """Records a re-send of a stuck settlement at the same nonce with a higher fee."""
        with self.writing() as c:
            c.execute(
                update(SETTLEMENTS)
                .where(SETTLEMENTS.c.id == settlement_id)
                .values(
                    tx_hashes=SETTLEMENTS.c.tx_hashes + "," + tx_hash,
                    gas_price=gas_price,
                    sent_at=time.time(),  # the next bump waits as long again
                )
            )

    def pending_settlements(self) -> list[Row[Any]]:
        with self.engine.connect() as c:
            return list(c.execute(_PENDING).all())

    def settlement_jobs(self, settlement_id: int) -> list[JobRow]:
        with self.engine.connect() as c:
            return list(c.execute(_OF_SETTLEMENT, {"sid": settlement_id}).all())

    def settlement_mined(
        self,
        settlement_id: int,
        tx_hash: str,
        block: int,
        gas_used: int,
        charges: dict[str, tuple[int, int]] | None = None,
    ) -> list[str]:
        """Marks a settlement mined and its jobs SETTLED, with their (charge, refund); returns the jobs.

        The `JobSettled` events, when ingested, find the jobs SETTLED already and move nothing again."""
        now = time.time()
        with self.writing() as c:
            c.execute(
                update(SETTLEMENTS)
                .where(SETTLEMENTS.c.id == settlement_id)
                .values(status="mined", mined_block=block, gas_used=gas_used)
            )
            ids = [str(j) for (j,) in c.execute(_SETTLING_IDS, {"sid": settlement_id})]
            values = {"settle_tx": tx_hash, "closed_block": block, "lease_until": 0.0}
            detail = f"block {block} tx {tx_hash}"
            moved = self.move(c, ids, _S.SETTLED, now, detail, values=values, sources=[_S.SETTLING])
            charged = [(j, charges[j]) for j in moved if charges and j in charges]
            if charged:
                c.execute(
                    RECORD_SETTLEMENT,
                    [
                        {"w_id": j, "charge": ch, "refund": rf, "settle_tx": tx_hash, "closed_block": block}
                        for j, (ch, rf) in charged
                    ],
                )
            return moved

    def settlement_dropped(self, settlement_id: int, status: str, reason: str) -> None:
        """The settlement will not be mined (or reverted): its unsettled jobs go back to COMPLETED."""
        now = time.time()
        with self.writing() as c:
            c.execute(update(SETTLEMENTS).where(SETTLEMENTS.c.id == settlement_id).values(status=status))
            ids = [str(j) for (j,) in c.execute(_SETTLING_IDS, {"sid": settlement_id})]
            values = {"settlement_id": None}
            self.move(c, ids, _S.COMPLETED, now, reason, values=values, sources=[_S.SETTLING])

    def requeue(self, job_ids: Sequence[str]) -> None:
        """Puts completed jobs at the back of the settlement queue (their payment is not on the chain). The
        first requeue of a job is recorded in its history; later ones only move it back in the queue."""
        if not job_ids:
            return
        now = time.time()
        with self.writing() as c:
            first = JOBS.c.reason.is_(None) | (JOBS.c.reason != NOT_ON_CHAIN)
            values = {"completed_at": now, "reason": NOT_ON_CHAIN}
            self.move(
                c,
                job_ids,
                _S.COMPLETED,
                now,
                NOT_ON_CHAIN,
                values=values,
                sources=[_S.COMPLETED],
                where=[first],
            )
            c.execute(
                update(JOBS)
                .where(JOBS.c.job_id.in_(list(job_ids)), JOBS.c.state == _S.COMPLETED.value)
                .values(completed_at=now)
            )

    def mark(
        self,
        job_ids: Sequence[str],
        state: JobState,
        reason: str,
        *,
        closed_block: int | None = None,
    ) -> list[str]:
        """Moves jobs to `state` for `reason` (e.g. found settled or expired on-chain); returns the moved."""
        if not job_ids:
            return []
        values: dict[str, Any] = {"reason": reason, "lease_until": 0.0}
        if closed_block is not None:
            values["closed_block"] = closed_block
        with self.writing() as c:
            return self.move(c, job_ids, state, time.time(), reason, values=values)

"""Batched settlement: completed jobs go on-chain in one `settle` transaction per batch.

Only the relayer holding the leader lease settles, with its own nonce. Before sending anything (a batch or a
fee bump) it reads each job's on-chain state and leaves out jobs that are no longer open or too close to their
deadline, so nothing is settled twice and one stale job cannot revert a batch. A settlement is recorded in the
store (nonce, hash, jobs) before it is sent; after a restart the settler first resolves what it had in flight:
mined, reverted, replaced, or still pending (then bumped when stuck).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from bme.chain.abi import calldata, returned_struct
from bme.chain.events import EventDecoder
from bme.chain.fast_signer import Key
from bme.chain.reverts import decode_revert
from bme.chain.rpc import Rpc, RpcError
from bme.economics.jobs import JobStatus
from bme.economics.keccak import keccak256
from bme.relayer.db import State
from bme.relayer.metrics import RelayerMetrics
from bme.relayer.store import JobStore
from bme.relayer.store.base import JobRow

log = logging.getLogger(__name__)

GAS_MARGIN = 1.2  # over eth_estimateGas: refunds and warm/cold slots differ between estimate and inclusion
BUMP = 1.25  # nodes accept a replacement at +10% or more


def clamped(count: int | None, cap: int | None) -> int:
    """A token count as settled: never above the job's on-chain cap (the escrow refuses more), None as 0."""
    value = int(count or 0)
    return value if cap is None else min(value, int(cap))


def settle_calldata(jobs: Sequence[JobRow]) -> bytes:
    """The `settle` call for `jobs`, their token counts clamped to the caps each payer committed to."""
    rows = [
        (
            int(j.job_id, 16),
            j.operator or "",
            clamped(j.input_tokens, j.max_input_tokens),
            clamped(j.output_tokens, j.max_output_tokens),
            bytes.fromhex((j.result_hash or "0x")[2:]),
        )
        for j in jobs
    ]
    return calldata("JobEscrow", "settle", rows)


class Settler:
    def __init__(
        self,
        rpc: Rpc,
        store: JobStore,
        account: LocalAccount,
        escrow: str,
        chain_id: int,
        metrics: RelayerMetrics,
        decoder: EventDecoder,
        *,
        batch_size: int = 50,
        batch_age_s: float = 2.0,
        stuck_after_s: float = 30.0,
        deadline_margin_s: float = 30.0,
        receipt_poll_s: float = 0.005,
        max_gas_price: int = 500 * 10**9,
    ) -> None:
        self.rpc = rpc
        self.store = store
        self.account = account
        self._key = Key(bytes(account.key))  # signs settlements: eth-account's signing costs ~5x the CPU
        self.escrow = to_checksum_address(escrow)
        self.chain_id = chain_id
        self.metrics = metrics
        self.decoder = decoder
        self.batch_size = batch_size
        self.batch_age_s = batch_age_s
        self.stuck_after_s = stuck_after_s
        self.deadline_margin_s = deadline_margin_s
        self.receipt_poll_s = receipt_poll_s
        self.max_gas_price = max_gas_price  # fee bumps stop here
        self._nonce: int | None = None
        self._gas_price: int | None = None

    async def _base_gas_price(self) -> int:
        if self._gas_price is None:
            self._gas_price = max(2 * int(await self.rpc.call("eth_gasPrice"), 16), 10**9)
        return self._gas_price

    async def step(self) -> int:
        """Resolves the settlement in flight, or sends the next batch when due; returns the jobs settled."""
        pending = self.store.pending_settlements()
        if pending:
            return await self._resolve(pending[0])
        jobs, oldest = self.store.settleable(self.batch_size)
        if not jobs or oldest is None:
            return 0
        if len(jobs) < self.batch_size and time.time() - oldest < self.batch_age_s:
            return 0
        batch = await self._still_open(jobs)
        if not batch:
            return 0
        batch, gas = await self._estimate(batch)
        if not batch:
            return 0
        nonce = await self._next_nonce()
        gas_price = await self._base_gas_price()
        tx_hash, raw = self._sign(batch, nonce, gas_price, gas)
        settlement_id = self.store.begin_settlement([j.job_id for j in batch], nonce, tx_hash, gas_price)
        self._nonce = nonce + 1
        await self._send(raw)
        return await self._resolve_by_id(settlement_id)

    def _charges(self, receipt: dict[str, Any]) -> dict[str, tuple[int, int]]:
        """(charge, refund) by job id, from the `JobSettled` events of a settlement's receipt."""
        events = (self.decoder.decode(entry) for entry in receipt.get("logs") or [])
        return {
            f"0x{ev.args['jobId']:064x}": (int(ev.args["charge"]), int(ev.args["refund"]))
            for ev in events
            if ev is not None and ev.name == "JobSettled"
        }

    def forget_nonce(self) -> None:
        """Reads the account's nonce from the chain again before the next send (after another relayer led)."""
        self._nonce = None

    async def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = int(
                await self.rpc.call("eth_getTransactionCount", [self.account.address, "pending"]), 16
            )
        return self._nonce

    async def _estimate(self, batch: list[JobRow]) -> tuple[list[JobRow], int]:
        """The largest leading part of `batch` that would go through, and its gas with a margin.

        The on-chain checks before make a revert rare; when one happens anyway, halving isolates the job that
        causes it, which is failed with the contract's reason rather than blocking every later batch.
        """
        while batch:
            call = {
                "from": self.account.address,
                "to": self.escrow,
                "data": "0x" + settle_calldata(batch).hex(),
            }
            try:
                # At the latest block, as the checks before: the pending state may hold our own earlier send.
                gas = int(await self.rpc.call("eth_estimateGas", [call, "latest"]), 16)
                return batch, int(gas * GAS_MARGIN) + 10_000
            except RpcError as exc:
                if "revert" not in exc.rpc_message.lower():
                    raise  # the node is unwell, not the batch
                if len(batch) == 1:
                    why = str(decode_revert(exc.data)) if isinstance(exc.data, str) else exc.rpc_message
                    reason = f"the escrow refuses to settle it: {why}"
                    self.store.mark([batch[0].job_id], State.FAILED, reason)
                    log.warning("job %s: %s", batch[0].job_id, reason)
                    return [], 0
                batch = batch[: len(batch) // 2]
        return [], 0

    def _sign(self, batch: Sequence[JobRow], nonce: int, gas_price: int, gas: int) -> tuple[str, bytes]:
        raw = self._key.sign_legacy(
            nonce, gas_price, gas, bytes.fromhex(self.escrow[2:]), 0, settle_calldata(batch), self.chain_id
        )
        return "0x" + keccak256(raw).hex(), raw

    async def _send(self, raw: bytes) -> None:
        try:
            await self.rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
        except RpcError as exc:
            # Already known, or the nonce was used by an earlier send of ours: the receipt tells.
            log.info("sending a settlement: %s", exc.rpc_message)

    async def _still_open(self, jobs: Sequence[JobRow]) -> list[JobRow]:
        """The jobs that are open on-chain and not too close to their deadline; the others are marked."""
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False])]
        for j in jobs:
            data = "0x" + calldata("JobEscrow", "jobOf", int(j.job_id, 16)).hex()
            calls.append(("eth_call", [{"to": self.escrow, "data": data}, "latest"]))
        latest, *results = await self.rpc.batch(calls)
        # Deadlines are in chain time, which a devnet may have moved ahead of the wall clock.
        now = int(latest["timestamp"], 16)
        keep, settled, expired, late = [], [], [], []
        for job, raw in zip(jobs, results, strict=True):
            onchain = returned_struct("JobEscrow", "jobOf", bytes.fromhex(raw[2:]))
            status, deadline = onchain["status"], onchain["deadline"]
            if status == JobStatus.SETTLED:
                settled.append(job.job_id)
            elif status == JobStatus.EXPIRED:
                expired.append(job.job_id)
            elif status != JobStatus.OPEN:
                late.append(job.job_id)  # not on-chain (yet): a reorganisation dropped it
            elif deadline < now + self.deadline_margin_s:
                expired.append(job.job_id)
            else:
                keep.append(job)
        self.store.mark(settled, State.SETTLED, "found settled on-chain")
        self.store.mark(expired, State.EXPIRED, "its deadline passed (or nearly) before settlement")
        # A payment a reorganisation took away may come back; until then (or its deadline) its job waits at
        # the back of the queue, so such jobs never hold up the settlement of the others.
        self.store.requeue(late)
        return keep

    async def _resolve(self, settlement: Any) -> int:
        return await self._resolve_by_id(int(settlement.id))

    async def _resolve_by_id(self, settlement_id: int) -> int:
        """Waits briefly for the settlement's receipt; bumps its fee when stuck; returns jobs settled."""
        row = next((r for r in self.store.pending_settlements() if r.id == settlement_id), None)
        if row is None:
            return 0
        hashes = row.tx_hashes.split(",")
        deadline = time.monotonic() + min(self.stuck_after_s, 2.0)
        while True:
            receipts = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            for tx_hash, receipt in zip(hashes, receipts, strict=True):
                if receipt is None:
                    continue
                block = int(receipt["blockNumber"], 16)
                if int(receipt["status"], 16) == 1:
                    jobs = self.store.settlement_jobs(settlement_id)
                    settled = self.store.settlement_mined(
                        settlement_id, tx_hash, block, int(receipt["gasUsed"], 16), self._charges(receipt)
                    )
                    now = time.time()
                    for j in jobs:
                        if j.completed_at is not None:
                            self.metrics.settlement_lag.observe(now - j.completed_at)
                    self.metrics.settlements.labels(outcome="mined").inc()
                    self.metrics.settled_jobs.inc(len(settled))
                    return len(settled)
                self.store.settlement_dropped(settlement_id, "reverted", f"settlement {tx_hash} reverted")
                self.metrics.settlements.labels(outcome="reverted").inc()
                return 0
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(self.receipt_poll_s)
        mined_nonce = int(
            await self.rpc.call("eth_getTransactionCount", [self.account.address, "latest"]), 16
        )
        if mined_nonce > row.nonce:
            # The nonce went to a transaction we have no receipt for: this one was dropped.
            self.store.settlement_dropped(
                settlement_id, "dropped", "its nonce was used by another transaction"
            )
            self._nonce = None  # whoever used it, the chain knows the next nonce better than the cache
            self.metrics.settlements.labels(outcome="dropped").inc()
            return 0
        if mined_nonce < row.nonce:
            # Earlier nonces of ours are no longer on the chain (a reorganisation dropped the transactions
            # that used them): this settlement waits behind the gap for ever, whatever its fee. Fill the gap.
            await self._fill_nonces(mined_nonce, row.nonce)
            return 0
        if time.time() - row.sent_at >= self.stuck_after_s:
            await self._bump(settlement_id, row.nonce, row.gas_price)
        return 0

    async def _fill_nonces(self, first: int, end: int) -> None:
        """Sends an empty transaction (to ourselves, no value) at each nonce from `first` up to `end`."""
        gas_price = await self._base_gas_price()
        log.warning("settlement nonces %s to %s were reorganised away: filling them", first, end - 1)
        for nonce in range(first, end):
            to = bytes.fromhex(self.account.address[2:])
            await self._send(self._key.sign_legacy(nonce, gas_price, 21_000, to, 0, b"", self.chain_id))

    async def _bump(self, settlement_id: int, nonce: int, gas_price: int) -> None:
        """Re-sends a stuck settlement at the same nonce with a higher fee, re-checking the jobs first."""
        jobs = self.store.settlement_jobs(settlement_id)
        batch = await self._still_open([j for j in jobs if j.state == State.SETTLING.value])
        new_price = min(int(gas_price * BUMP) + 1, self.max_gas_price)
        if new_price <= gas_price:
            log.warning(
                "settlement %s is stuck at the highest gas price allowed (%s)", settlement_id, gas_price
            )
            return
        if not batch:
            self.store.settlement_dropped(settlement_id, "dropped", "no job of it is open any more")
            return
        batch, gas = await self._estimate(batch)
        if not batch:
            self.store.settlement_dropped(settlement_id, "dropped", "no job of it can be settled")
            return
        tx_hash, raw = self._sign(batch, nonce, new_price, gas)
        self.store.bump_settlement(settlement_id, tx_hash, new_price)
        self._gas_price = max(self._gas_price or 0, new_price)
        self.metrics.fee_bumps.inc()
        log.warning(
            "settlement %s stuck: re-sent at nonce %s with gas price %s", settlement_id, nonce, new_price
        )
        await self._send(raw)

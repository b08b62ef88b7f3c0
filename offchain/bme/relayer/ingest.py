"""Event ingestion: `eth_getLogs` polling over paged block ranges, with confirmations and reorg rollback.

One poll:
1. reads the head; the safe head is `head - confirmations`;
2. checks that the checkpoint's block is still canonical (its stored hash against the node's); if not, walks
   back through the stored hashes to the newest block still canonical and rolls the store back to it;
3. fetches the logs of the next page of blocks (halving the page while the node refuses the range), reading
   the page's last block hash before and after, so a reorganisation during the fetch is noticed, not
   ingested. Step 1 also reads the block after the checkpoint: in the steady state (one new block per
   poll) that is the page, and its hash is the "before" reading, so a poll costs three round trips;
4. reads the registry's view of each operator that had an event, at the page's last block;
5. stores the rows and the new checkpoint in one database transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from bme.chain.abi import calldata, returned, returned_struct
from bme.chain.events import ESCROW_EVENTS, Event, EventDecoder
from bme.chain.rpc import Rpc, RpcError
from bme.relayer.store import IngestResult, JobStore, OperatorInfo

log = logging.getLogger(__name__)

#: The registry's views of an operator read after its events, in the order `_operators` reads them.
_OPERATOR_VIEWS = ("operatorOf", "endpointOf", "modelsOf", "isActive")


def _number(value: object) -> int | None:
    """A header's 0x-hex quantity as an int (None when absent or malformed)."""
    try:
        return int(str(value), 16)
    except ValueError:
        return None


class ReorgDuringFetch(Exception):
    """The page's last block changed while its logs were read: read it again."""


@dataclass
class PollOutcome:
    ingested: IngestResult | None = None
    events: int = 0
    rolled_back_to: int | None = None
    head: int = 0
    checkpoint: int = 0
    behind: bool = False  # more pages are waiting


class Ingestor:
    """Moves the store's checkpoint towards the safe head, one page per `poll`."""

    def __init__(
        self,
        rpc: Rpc,
        store: JobStore,
        decoder: EventDecoder,
        *,
        start_block: int,
        confirmations: int,
        max_range: int = 2_000,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.store = store
        self.decoder = decoder
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max_range
        self.range = max_range
        self._cp: tuple[int, str] | None = None  # the store's checkpoint; this process is its only writer
        self.on_events = on_events or (lambda _events: None)

    def forget_checkpoint(self) -> None:
        """Re-reads the checkpoint from the store at the next poll (another relayer may have moved it)."""
        self._cp = None

    async def _checkpoint(self) -> tuple[int, str]:
        if self._cp is not None:
            return self._cp
        cp = self.store.checkpoint()
        if cp is not None:
            self._cp = cp
            return cp
        number = max(self.start_block - 1, 0)
        block_hash = await self.rpc.block_hash(number)
        if block_hash is None:
            raise RpcError("eth_getBlockByNumber", f"the node has no block {number}")
        return number, block_hash

    async def poll(self, announced: dict[str, Any] | None = None) -> PollOutcome:
        """Ingests the next page; `announced` is the newest block header the new-block subscription gave,
        if any (it is used only when it is the block after the checkpoint and no confirmations are asked)."""
        cp_number, cp_hash = await self._checkpoint()
        if (
            announced is not None
            and self.confirmations == 0
            and announced.get("parentHash") == cp_hash
            and _number(announced.get("number")) == cp_number + 1
        ):
            outcome = await self._poll_announced(cp_number + 1, str(announced["hash"]))
            if outcome is not None:
                return outcome
        head_hex, cp_block, next_block = await self.rpc.batch(
            [
                ("eth_blockNumber", []),
                ("eth_getBlockByNumber", [hex(cp_number), False]),
                ("eth_getBlockByNumber", [hex(cp_number + 1), False]),
            ]
        )
        head = int(head_hex, 16)
        outcome = PollOutcome(head=head, checkpoint=cp_number)
        if cp_block is None or cp_block["hash"] != cp_hash:
            self._cp = None
            outcome.rolled_back_to = await self._roll_back()
            outcome.checkpoint = outcome.rolled_back_to
            return outcome
        safe = head - self.confirmations
        if safe <= cp_number:
            return outcome
        to = min(safe, cp_number + self.range)
        # The header read with the head is the page's "before" hash when the page is that one block.
        before = str(next_block["hash"]) if to == cp_number + 1 and next_block is not None else None
        try:
            events, last, last_hash = await self._fetch(cp_number, cp_hash, to, before)
        except ReorgDuringFetch:
            outcome.behind = True
            return outcome
        outcome = await self._store(events, (last, last_hash), outcome)
        outcome.behind = last < safe
        return outcome

    async def _store(self, events: list[Event], last: tuple[int, str], outcome: PollOutcome) -> PollOutcome:
        """Reads the operators the events name, then stores the rows and moves the checkpoint to `last`."""
        operators = await self._operators(events, last[0])
        hashes = {e.block_number: e.block_hash for e in events}
        try:
            outcome.ingested = self.store.ingest(events, hashes, last, operators)
        except Exception:
            self._cp = None  # the store is the truth: read it again after a failed write
            raise
        self._cp = last
        outcome.events, outcome.checkpoint = len(events), last[0]
        if events:
            self.on_events(events)
        return outcome

    async def _poll_announced(self, number: int, block_hash: str) -> PollOutcome | None:
        """Ingests block `number` (announced with `block_hash`, its parent the checkpoint) from its logs read
        by hash; None when the node no longer has that block (then the full poll runs)."""
        query = {"address": self.decoder.addresses, "blockHash": block_hash}
        try:
            logs = await self.rpc.call("eth_getLogs", [query])
        except RpcError as exc:
            log.debug("logs of announced block %s: %s", number, exc.rpc_message)
            return None
        events = [ev for ev in (self.decoder.decode(entry) for entry in logs) if ev is not None]
        if any(ev.block_number != number or ev.block_hash != block_hash for ev in events):
            return None
        events.sort(key=lambda e: e.log_index)
        return await self._store(events, (number, block_hash), PollOutcome(head=number))

    async def _fetch(
        self, cp_number: int, cp_hash: str, to: int, before: str | None = None
    ) -> tuple[list[Event], int, str]:
        """The events of blocks `cp_number + 1` to `to` (or fewer, when the node refuses the range), the
        last block read and its hash; `before` is the hash of block `to` if it was read already."""
        start = cp_number + 1
        while True:
            if before is None:
                before = await self.rpc.block_hash(to)
            try:
                logs = await self.rpc.get_logs(self.decoder.addresses, start, to)
                break
            except RpcError as exc:
                if to == start:
                    raise
                # The node refused the range (too many blocks or results): halve it and keep the smaller size.
                self.range = max(1, (to - start + 1) // 2)
                to = start + self.range - 1
                before = None
                log.info(
                    "eth_getLogs refused %s blocks (%s); trying %s",
                    to - start + 1,
                    exc.rpc_message,
                    self.range,
                )
        after, cp_now = await self.rpc.batch(
            [("eth_getBlockByNumber", [hex(to), False]), ("eth_getBlockByNumber", [hex(cp_number), False])]
        )
        if after is None or before != after["hash"] or cp_now is None or cp_now["hash"] != cp_hash:
            raise ReorgDuringFetch
        if self.range < self.max_range:
            self.range = min(self.max_range, self.range * 2)  # grow back after a success
        events = [ev for ev in (self.decoder.decode(entry) for entry in logs) if ev is not None]
        if any(ev.block_number == to and ev.block_hash != before for ev in events):
            raise ReorgDuringFetch
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return events, to, str(before)

    async def _roll_back(self) -> int:
        """Rolls the store back to the newest stored block that is still canonical; returns its number."""
        stored = self.store.recent_hashes()
        ancestor: tuple[int, str] | None = None
        for number, block_hash in stored:
            if await self.rpc.block_hash(number) == block_hash:
                ancestor = (number, block_hash)
                break
        if ancestor is None:
            # Deeper than the hashes kept: start again from the block before the deployment.
            number = max(self.start_block - 1, 0)
            genesis_side = await self.rpc.block_hash(number)
            if genesis_side is None:
                raise RpcError("eth_getBlockByNumber", f"the node has no block {number}")
            ancestor = (number, genesis_side)
        affected = self.store.rollback(ancestor)
        log.warning("chain reorganisation: rolled back to block %s (%s jobs affected)", ancestor[0], affected)
        return ancestor[0]

    async def _operators(self, events: list[Event], block: int) -> list[OperatorInfo]:
        addresses = sorted(
            {to_checksum_address(e.args["operator"]) for e in events if e.name not in ESCROW_EVENTS}
        )
        if not addresses:
            return []
        registry = to_checksum_address(self.decoder.registry)
        calls = []
        for a in addresses:
            for view in _OPERATOR_VIEWS:
                data = calldata("OperatorRegistry", view, a)
                calls.append(("eth_call", [{"to": registry, "data": "0x" + data.hex()}, hex(block)]))
        results = await self.rpc.batch(calls)
        out = []
        for i, a in enumerate(addresses):
            op_raw, endpoint_raw, models_raw, active_raw = (
                bytes.fromhex(r[2:]) for r in results[4 * i : 4 * i + 4]
            )
            operator = returned_struct("OperatorRegistry", "operatorOf", op_raw)
            (endpoint,) = returned("OperatorRegistry", "endpointOf", endpoint_raw)
            (models,) = returned("OperatorRegistry", "modelsOf", models_raw)
            (active,) = returned("OperatorRegistry", "isActive", active_raw)
            out.append(
                OperatorInfo(
                    a, str(endpoint), tuple(int(m) for m in models), bool(active), bool(operator["jailed"])
                )
            )
        return out

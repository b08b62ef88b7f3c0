"""Event ingestion against a real anvil with the protocol's real events: the page halving when the node
refuses a block range, the confirmation depth, and the rollback to the common ancestor after a
reorganisation."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bme.chain.events import EventDecoder
from bme.chain.rpc import Rpc, RpcError
from bme.relayer.ingest import Ingestor, PollOutcome
from bme.relayer.store import JobStore
from bme.stack import LocalStack, StackConfig

from .helpers import JobFactory, rpc

RANGE_LIMIT = 3


class RangeLimitedRpc(Rpc):
    """A node that refuses `eth_getLogs` over more than `limit` blocks, as hosted RPC providers do."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(url)
        self.limit = limit
        self.requests: list[tuple[int, int, bool]] = []  # (from, to, accepted)

    async def get_logs(self, addresses: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        accepted = to_block - from_block + 1 <= self.limit
        self.requests.append((from_block, to_block, accepted))
        if not accepted:
            raise RpcError("eth_getLogs", f"query exceeds max block range {self.limit}", -32005)
        return await super().get_logs(addresses, from_block, to_block)


class ReorgingRpc(Rpc):
    """Replaces the chain's last block (anvil_reorg) right after the first `eth_getLogs` answers."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reorged = False

    async def get_logs(self, addresses: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        logs = await super().get_logs(addresses, from_block, to_block)
        if not self.reorged:
            self.reorged = True
            await self.call("anvil_reorg", [1, []])
        return logs


@pytest.fixture(scope="module")
def stack(tmp_path_factory: Any) -> Iterator[LocalStack]:
    """anvil with the protocol deployed and a registered operator (no node or relayer processes)."""
    with LocalStack(
        StackConfig(work_dir=tmp_path_factory.mktemp("ingest"), users=3, price_interval_s=0)
    ) as st:
        st.register_operator(0, "http://127.0.0.1:9/")
        yield st


def factory(st: LocalStack, user: int) -> JobFactory:
    f = JobFactory(st, "http://127.0.0.1:9", users=[st.users[user]])
    f.fund(11 * 10**18)
    return f


def paid(st: LocalStack, f: JobFactory, count: int) -> list[str]:
    """Pays `count` jobs and returns once every payment is mined (anvil mines after answering the send)."""
    jobs = f.make(count)
    f.pay(jobs)
    deadline = time.monotonic() + 30
    while f.unmined(jobs):
        assert time.monotonic() < deadline, "payments not mined"
        time.sleep(0.01)
    return [j.job_hex for j in jobs]


def ingestor(st: LocalStack, node: Rpc, db: Path, confirmations: int = 0, max_range: int = 64) -> Ingestor:
    d = st.protocol.deployment
    return Ingestor(
        node,
        JobStore(f"sqlite:///{db}", owner="test"),
        EventDecoder(d.escrow, d.registry),
        start_block=d.first_block,
        confirmations=confirmations,
        max_range=max_range,
    )


async def caught_up(ing: Ingestor) -> list[PollOutcome]:
    """Polls until the checkpoint reaches the safe head; returns each poll's outcome."""
    outcomes = []
    for _ in range(1_000):
        outcome = await ing.poll()
        outcomes.append(outcome)
        if outcome.checkpoint >= outcome.head - ing.confirmations and not outcome.behind:
            return outcomes
    raise AssertionError("ingestion did not catch up")


def head(st: LocalStack) -> int:
    return int(rpc(st.anvil.url, "eth_blockNumber"), 16)


def block_hash(st: LocalStack, number: int) -> str:
    return str(rpc(st.anvil.url, "eth_getBlockByNumber", [hex(number), False])["hash"])


def test_ingestor_halves_the_block_range_the_node_refuses(stack: LocalStack, tmp_path: Path) -> None:
    jobs = paid(stack, factory(stack, 0), 12)
    node = RangeLimitedRpc(stack.anvil.url, RANGE_LIMIT)
    ing = ingestor(stack, node, tmp_path / "relayer.db")

    async def run() -> None:
        await caught_up(ing)
        await node.aclose()

    asyncio.run(run())

    # Everything is in the store: the price book, the operator (read from the registry), every job.
    assert {m.name for m in ing.store.model_rows()} == {"SmolLM2-135M-Instruct"}
    (operator,) = ing.store.operators()
    assert (operator.address, operator.endpoint, operator.models, operator.active) == (
        stack.operators[0].address,
        "http://127.0.0.1:9/",
        "1",
        True,
    )
    assert ing.store.counts() == {"OPENED": len(jobs)}
    assert all(ing.store.job(j)[0] is not None for j in jobs)

    # The first page (every block up to the head, fewer than 64) was refused and halved until the node took
    # it; later pages grew back (doubling after each success) and were halved again when refused. The pages
    # accepted cover every block once, in order, up to the head.
    first_block, last_block = stack.protocol.deployment.first_block, head(stack)
    requests = node.requests
    assert requests[0] == (first_block, min(last_block, first_block + 63), False)
    for (start, to, accepted), (next_start, next_to, _) in itertools.pairwise(requests):
        if not accepted:
            assert next_start == start and next_to - next_start + 1 == (to - start + 1) // 2
    accepted = [(s, t) for s, t, ok in requests if ok]
    assert all(t - s + 1 <= RANGE_LIMIT for s, t in accepted)
    first_accepted = next(i for i, (_s, _t, ok) in enumerate(requests) if ok)
    assert any(not ok for _s, _t, ok in requests[first_accepted:])  # grew back past the limit, halved again
    assert accepted[0][0] == first_block
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(accepted))
    assert accepted[-1][1] == last_block
    assert ing.store.checkpoint() == (last_block, block_hash(stack, last_block))


def test_ingestor_waits_for_the_confirmation_depth(stack: LocalStack, tmp_path: Path) -> None:
    f = factory(stack, 1)

    async def run() -> None:
        ing = ingestor(stack, Rpc(stack.anvil.url), tmp_path / "relayer.db", confirmations=3)
        await caught_up(ing)
        (job,) = paid(stack, f, 1)  # mined in a block of its own: the new head
        await caught_up(ing)
        assert ing.store.job(job)[0] is None
        assert ing.store.checkpoint() == (head(stack) - 3, block_hash(stack, head(stack) - 3))
        rpc(stack.anvil.url, "anvil_mine", [2])
        await caught_up(ing)
        assert ing.store.job(job)[0] is None
        rpc(stack.anvil.url, "anvil_mine", [1])
        await caught_up(ing)
        assert ing.store.job(job)[0] is not None
        await ing.rpc.aclose()

    asyncio.run(run())


def test_ingestor_rolls_back_to_the_common_ancestor_after_a_reorganisation(
    stack: LocalStack, tmp_path: Path
) -> None:
    f, g = factory(stack, 0), factory(stack, 2)

    async def run() -> None:
        ing = ingestor(stack, Rpc(stack.anvil.url), tmp_path / "relayer.db")
        await caught_up(ing)
        ancestor = head(stack)
        dropped = paid(stack, f, 3)
        rpc(stack.anvil.url, "anvil_mine", [2])
        depth = head(stack) - ancestor
        await caught_up(ing)
        assert all(ing.store.job(j)[0] is not None for j in dropped)

        # The blocks after the ancestor are replaced by as many others and one more, with other payments.
        replacing = g.make(2)
        rpc(stack.anvil.url, "anvil_reorg", [depth, [[replacing[0].raw_tx, 0], [replacing[1].raw_tx, 1]]])
        rpc(stack.anvil.url, "anvil_mine", [1])
        outcomes = await caught_up(ing)
        assert outcomes[0].rolled_back_to == ancestor
        assert all(ing.store.job(j)[0] is None for j in dropped)
        for job in replacing:
            row = ing.store.job(job.job_hex)[0]
            assert row is not None and row.block_number > ancestor
        assert ing.store.checkpoint() == (head(stack), block_hash(stack, head(stack)))
        await ing.rpc.aclose()

    asyncio.run(run())


def test_a_reorganisation_during_a_fetch_is_not_ingested(stack: LocalStack, tmp_path: Path) -> None:
    f = factory(stack, 1)

    async def run() -> None:
        ing = ingestor(stack, Rpc(stack.anvil.url), tmp_path / "relayer.db")
        await caught_up(ing)
        (job,) = paid(stack, f, 1)
        await ing.rpc.aclose()
        ing.rpc = ReorgingRpc(stack.anvil.url)  # the job's block is replaced while its logs are read
        outcome = await ing.poll()
        assert outcome.ingested is None and outcome.behind
        await caught_up(ing)
        assert ing.store.job(job)[0] is None
        assert ing.store.checkpoint() == (head(stack), block_hash(stack, head(stack)))
        await ing.rpc.aclose()

    asyncio.run(run())


class CountingRpc(Rpc):
    """Counts the HTTP requests made to the node (a batch is one)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.requests = 0

    async def _post(self, method: str, payload: Any) -> Any:
        self.requests += 1
        return await super()._post(method, payload)


def test_an_announced_block_is_ingested_in_one_call_and_a_forged_or_reorganised_one_is_not_trusted(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The steady state: the block the new-block subscription announces, whose parent is the checkpoint,
    is ingested from one `eth_getLogs` by its hash (the full poll takes three requests). An announcement is
    never trusted beyond that: one naming a block the node does not have (forged, or reorganised away) takes
    the full poll, which ingests the canonical block; after a reorganisation the next announcement's parent
    is not the checkpoint, and the full poll rolls the store back as before."""
    f, g = factory(stack, 1), factory(stack, 2)
    url = stack.anvil.url

    def header(number: int) -> dict[str, Any]:
        return dict(rpc(url, "eth_getBlockByNumber", [hex(number), False]))

    async def run() -> None:
        node = CountingRpc(url)
        ing = ingestor(stack, node, tmp_path / "relayer.db")
        await caught_up(ing)

        (first,) = paid(stack, f, 1)  # mined in a block of its own: the new head
        announced = header(head(stack))
        before = node.requests
        outcome = await ing.poll(announced)
        assert node.requests - before == 1
        assert (outcome.checkpoint, outcome.events, outcome.behind) == (
            int(announced["number"], 16),
            1,
            False,
        )
        assert ing.store.checkpoint() == (int(announced["number"], 16), announced["hash"])
        assert ing.store.job(first)[0] is not None

        # A forged announcement: the next number, the checkpoint as parent, a hash no block has.
        (second,) = paid(stack, f, 1)
        real = header(head(stack))
        forged = {**real, "hash": "0x" + "ee" * 32}
        before = node.requests
        outcome = await ing.poll(forged)
        assert node.requests - before == 1 + 3  # the refused logs by hash, then the full poll
        assert ing.store.checkpoint() == (int(real["number"], 16), real["hash"])
        assert ing.store.job(second)[0] is not None

        # The block of `second` is replaced by one with another payment: its announcement's parent is the
        # checkpoint's parent, not the checkpoint, so the full poll runs, sees the checkpoint is no longer
        # canonical and rolls back; the replacing payment is ingested next.
        (replacing,) = g.make(1)
        rpc(url, "anvil_reorg", [1, [[replacing.raw_tx, 0]]])
        reorged = header(head(stack))
        assert reorged["parentHash"] != real["hash"] and int(reorged["number"], 16) == int(real["number"], 16)
        outcome = await ing.poll(reorged)
        assert outcome.rolled_back_to == int(real["number"], 16) - 1
        await caught_up(ing)
        assert ing.store.job(second)[0] is None
        assert ing.store.job(replacing.job_hex)[0] is not None
        assert ing.store.checkpoint() == (int(reorged["number"], 16), reorged["hash"])
        await node.aclose()

    asyncio.run(run())

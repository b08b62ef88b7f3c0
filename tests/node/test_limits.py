"""The admission gate: slots, a bounded queue, 503 beyond it, first come first served."""

from __future__ import annotations

import asyncio

import pytest

from bme.node.errors import ServerBusy
from bme.node.limits import AdmissionGate

pytestmark = pytest.mark.pure


def test_gate_admits_up_to_its_slots_then_queues_then_refuses() -> None:
    async def scenario() -> None:
        gate = AdmissionGate(slots=2, max_queue=1, retry_after_s=7)
        await gate.acquire(timeout=1)
        await gate.acquire(timeout=1)
        queued = asyncio.create_task(gate.acquire(timeout=5))
        await asyncio.sleep(0)
        assert (gate.active, gate.waiting) == (2, 1)
        with pytest.raises(ServerBusy) as refused:
            await gate.acquire(timeout=5)
        assert refused.value.status_code == 503
        assert refused.value.headers() == {"Retry-After": "7"}
        gate.release()  # hands the slot to the queued request
        await queued
        assert (gate.active, gate.waiting) == (2, 0)
        gate.release()
        gate.release()
        assert (gate.active, gate.waiting) == (0, 0)

    asyncio.run(scenario())


def test_gate_serves_waiters_in_arrival_order() -> None:
    async def scenario() -> list[int]:
        gate = AdmissionGate(slots=1, max_queue=3, retry_after_s=1)
        await gate.acquire(timeout=1)
        order: list[int] = []

        async def waiter(i: int) -> None:
            await gate.acquire(timeout=5)
            order.append(i)
            gate.release()

        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(waiter(i)))
            await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(*tasks)
        assert (gate.active, gate.waiting) == (0, 0)
        return order

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_gate_wait_times_out_with_503_and_leaves_the_queue() -> None:
    async def scenario() -> None:
        gate = AdmissionGate(slots=1, max_queue=1, retry_after_s=3)
        await gate.acquire(timeout=1)
        with pytest.raises(ServerBusy, match="No slot freed"):
            await gate.acquire(timeout=0.05)
        assert (gate.active, gate.waiting) == (1, 0)
        gate.release()
        await gate.acquire(timeout=0.05)  # the slot came back, not lost to the timed-out waiter

    asyncio.run(scenario())


def test_cancelled_waiter_gives_up_its_place() -> None:
    async def scenario() -> None:
        gate = AdmissionGate(slots=1, max_queue=1, retry_after_s=1)
        await gate.acquire(timeout=1)
        waiting = asyncio.create_task(gate.acquire(timeout=5))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert gate.waiting == 0
        gate.release()
        assert gate.active == 0

    asyncio.run(scenario())

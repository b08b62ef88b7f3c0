"""Admission control: a fixed number of completion slots and a bounded queue in front of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from bme.node.errors import ServerBusy


class AdmissionGate:
    """At most `slots` completions run at once and at most `max_queue` wait; anything more is refused.

    A released slot passes straight to the longest waiter (first come, first served). Not thread-safe: it
    belongs to one event loop, the server's.
    """

    def __init__(self, *, slots: int, max_queue: int, retry_after_s: int) -> None:
        if slots < 1 or max_queue < 0:
            raise ValueError("need at least one slot and a non-negative queue")
        self.slots = slots
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout: float) -> None:
        """Takes a slot, waiting in the queue up to `timeout` seconds; raises ServerBusy if it cannot."""
        if self._active < self.slots and not self._waiters:
            self._active += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise ServerBusy(
                f"The node is busy ({self._active} running, {len(self._waiters)} queued); retry later.",
                retry_after_s=self.retry_after_s,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout=max(timeout, 0.0))
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                self._discard(waiter)
            if isinstance(exc, TimeoutError):
                raise ServerBusy(
                    f"No slot freed within {timeout:.1f}s in the queue; retry later.",
                    retry_after_s=self.retry_after_s,
                ) from exc
            raise
        # The releaser handed its slot over, so `_active` already counts it.

    def release(self) -> None:
        """Gives a slot back, to the longest waiter if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._active -= 1

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

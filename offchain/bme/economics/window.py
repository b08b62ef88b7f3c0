"""Mirror of `contracts/libraries/RollingWindow.sol`: the two-bucket rolling-window limit."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bme.economics.math import ceil_div


@dataclass(frozen=True)
class WindowState:
    """The current bucket's start and the amounts counted in the previous and current buckets."""

    start: int
    previous: int = 0
    current: int = 0


def rolled(state: WindowState, now: int, length: int) -> tuple[WindowState, int]:
    """The state rolled forward to `now`, and the usage counted at `now` (rounded up)."""
    s = state
    if now >= s.start + length:
        buckets = (now - s.start) // length
        s = WindowState(
            start=s.start + buckets * length, previous=s.current if buckets == 1 else 0, current=0
        )
    overlap = length - (now - s.start)
    used = s.current + ceil_div(s.previous * overlap, length)
    return s, used


def consume(state: WindowState, now: int, length: int, limit: int, amount: int) -> WindowState | None:
    """The state after counting `amount`, or None when it does not fit under `limit`."""
    s, used = rolled(state, now, length)
    available = max(limit - used, 0)
    if amount > available:
        return None
    return replace(s, current=s.current + amount)

"""Mirror of `contracts/libraries/RollingWindow.sol`: a rolling-window limit that holds in every span.

Time is cut into buckets of `ceil(length / PAST_BUCKETS)` seconds; an amount is admitted only when it fits
under the limit with everything counted in the current bucket and the `PAST_BUCKETS` before it, each in full.
A span of `length` seconds touches at most `PAST_BUCKETS + 1` buckets, so no such span counts more than the
limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from bme.economics.math import ceil_div

#: Past buckets counted beside the current one (`RollingWindow.PAST_BUCKETS`).
PAST_BUCKETS = 4


def bucket_length(length: int) -> int:
    """The length of a bucket for a window of `length` seconds."""
    return ceil_div(length, PAST_BUCKETS)


@dataclass(frozen=True)
class WindowState:
    """The current bucket's start, what it counted, and what the `PAST_BUCKETS` before it counted (most recent
    first)."""

    start: int
    current: int = 0
    past: tuple[int, ...] = field(default=(0,) * PAST_BUCKETS)

    @property
    def total(self) -> int:
        return self.current + sum(self.past)


def rolled(state: WindowState, now: int, length: int) -> tuple[WindowState, int]:
    """The state rolled forward to `now`, and what the window counts at `now`."""
    s = state
    bucket = bucket_length(length)
    if now >= s.start + bucket:
        shift = (now - s.start) // bucket
        ages = (s.current, *s.past)  # ages 0 .. PAST_BUCKETS, which become shift .. shift + PAST_BUCKETS
        past = tuple(
            ages[age - shift] if 0 <= age - shift <= PAST_BUCKETS else 0 for age in range(1, PAST_BUCKETS + 1)
        )
        s = WindowState(start=s.start + shift * bucket, current=0, past=past)
    return s, s.total


def available(state: WindowState, now: int, length: int, limit: int) -> int:
    """What may still be counted at `now` under `limit`."""
    return max(limit - rolled(state, now, length)[1], 0)


def consume(state: WindowState, now: int, length: int, limit: int, amount: int) -> WindowState | None:
    """The state after counting `amount`, or None when it does not fit under `limit`."""
    s, used = rolled(state, now, length)
    if amount > max(limit - used, 0):
        return None
    return replace(s, current=s.current + amount)

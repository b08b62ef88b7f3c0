"""Exponential backoff, the one rule every retry in the package follows: the wait starts at `first`,
doubles (by `factor`) after each failure up to `cap`, and starts over after a success."""

from __future__ import annotations

from dataclasses import dataclass, field


def backoff_delay(failures: int, first: float, cap: float, factor: float = 2.0) -> float:
    """The wait after the `failures`-th failure in a row (1 for the first): `first * factor**(failures-1)`,
    at most `cap`."""
    return float(min(first * factor ** (max(failures, 1) - 1), cap))


@dataclass
class Backoff:
    """The running state of one retry loop: `failed()` gives the next wait, `succeeded()` starts over."""

    first: float
    cap: float
    factor: float = 2.0
    failures: int = field(default=0, init=False)

    def failed(self) -> float:
        """Counts a failure; returns how long to wait before trying again."""
        self.failures += 1
        return backoff_delay(self.failures, self.first, self.cap, self.factor)

    def succeeded(self) -> None:
        self.failures = 0

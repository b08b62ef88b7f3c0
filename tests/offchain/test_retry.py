"""The one backoff rule: doubling from the first wait, capped, starting over after a success."""

from __future__ import annotations

import pytest

from bme.relayer.store import unavailable_backoff
from bme.retry import Backoff, backoff_delay

pytestmark = pytest.mark.pure


def test_the_wait_doubles_up_to_the_cap_and_starts_over_after_a_success() -> None:
    b = Backoff(first=0.5, cap=3.0)
    assert [b.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.succeeded()
    assert b.failed() == 0.5


def test_the_dispatch_wait_for_an_unavailable_node_follows_the_same_rule() -> None:
    assert [unavailable_backoff(n) for n in range(1, 9)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert backoff_delay(0, 1.0, 10.0) == 1.0  # no failure yet counts as the first

"""The limits in the reference model (the Python mirror of the contracts): the rolling window holds in every
span of its length, redemptions and emissions have separate windows, pauses expire, and an oracle halt is kept
apart from the collateral status. The contract tests (`tests/contracts/test_limits.py`) perform the same
attacks on chain; the property tests check that chain and model agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bme.economics.math import ceil_div
from bme.economics.model import ModelRevert, Oracle, ProtocolModel
from bme.economics.params import MAX_MINT_LIMIT_PER_WINDOW, MAX_PAUSE, PAUSE_COOLDOWN, Parameters
from bme.economics.status import Status
from bme.economics.window import PAST_BUCKETS, WindowState, available, bucket_length, consume, rolled

pytestmark = pytest.mark.pure

CMP = 10**18
T0 = 1_000_000


def _two_bucket_used(
    start: int, previous: int, current: int, now: int, length: int
) -> tuple[int, int, int, int]:
    """The window this project had before: two buckets of `length`, the previous one weighted by its overlap
    with the window ending now (kept here only to show what it admitted). Returns (start, previous, current,
    used)."""
    if now >= start + length:
        buckets = (now - start) // length
        previous, current, start = (current if buckets == 1 else 0), 0, start + buckets * length
    return start, previous, current, current + ceil_div(previous * (length - (now - start)), length)


def test_the_two_bucket_window_admitted_almost_twice_its_limit() -> None:
    """The finding, reproduced: the limit at the end of one bucket, and almost the limit again one second
    before the same second of the next bucket ends, both inside one window-length span."""
    length, limit = 86_400, 60 * CMP
    start, previous, current, used = _two_bucket_used(T0, 0, 0, T0 + length - 1, length)
    current += limit - used  # the whole limit, in the last second of the first bucket
    start, previous, current, used = _two_bucket_used(start, previous, current, T0 + 2 * length - 2, length)
    second = limit - used
    assert 100 * (limit + second) > 199 * limit  # 1.99998x in the span [T0 + length - 1, T0 + 2 * length - 1)

    state = consume(WindowState(start=T0), T0 + length - 1, length, limit, limit)
    assert state is not None
    assert available(state, T0 + 2 * length - 2, length, limit) == 0
    assert consume(state, T0 + 2 * length - 2, length, limit, 1) is None


@given(
    length=st.integers(1, 200_000),
    limit=st.integers(1, 10**6),
    steps=st.lists(st.tuples(st.integers(0, 150_000), st.integers(0, 10**6)), max_size=60),
)
def test_no_span_of_the_window_length_counts_more_than_the_limit(
    length: int, limit: int, steps: list[tuple[int, int]]
) -> None:
    """Random mint sequences: the amounts admitted in every span of `length` seconds add up to at most the
    limit, and what the window reports as used is what the last `PAST_BUCKETS + 1` buckets admitted."""
    now, state = T0, WindowState(start=T0)
    admitted: list[tuple[int, int]] = []
    for dt, amount in steps:
        now += dt
        nxt = consume(state, now, length, limit, amount)
        if nxt is not None:
            state = nxt
            admitted.append((now, amount))
        state, used = rolled(state, now, length)
        bucket = bucket_length(length)
        oldest = state.start - PAST_BUCKETS * bucket
        assert used == sum(a for t, a in admitted if t >= oldest) <= limit
    # Every span [t, t + length) that starts at an admission (the spans with the most in them start there).
    for t, _ in admitted:
        assert sum(a for u, a in admitted if t <= u < t + length) <= limit


def test_an_amount_counts_for_one_window_and_at_most_one_bucket_more() -> None:
    length, limit = 86_400, 100
    bucket = bucket_length(length)
    state = consume(WindowState(start=T0), T0 + bucket - 1, length, limit, limit)
    assert state is not None
    # Counted through the fourth bucket after its own: length + bucket - 1 seconds after it was admitted.
    assert available(state, T0 + 5 * bucket - 1, length, limit) == 0
    assert available(state, T0 + 5 * bucket, length, limit) == limit


# ---------------------------------------------------------------- the protocol model


def _model() -> ProtocolModel:
    m = ProtocolModel(now=T0, window_start=T0, params=Parameters())
    m.oracle = Oracle(price=CMP, confidence=0, updated_at=T0)
    return m


def test_emissions_and_redemptions_fill_separate_windows() -> None:
    m = _model()
    m.set_emission_limit(10 * CMP)
    window = m.check_mint_emission(10 * CMP)
    m.mint_emission("0x00000000000000000000000000000000000B0E02", 10 * CMP, window)
    with pytest.raises(ModelRevert) as exc:
        m.check_mint_emission(1)
    assert exc.value.name == "BmeRateLimited"
    assert available(m.window, m.now, m.params.mint_window, m.mint_limit) == m.mint_limit


def test_limits_above_the_hard_maximum_are_refused() -> None:
    m = _model()
    for setter in (m.set_mint_limit, m.set_emission_limit):
        with pytest.raises(ModelRevert) as exc:
            setter(MAX_MINT_LIMIT_PER_WINDOW + 1)
        assert exc.value.name == "BmeMintLimitTooHigh"
        setter(MAX_MINT_LIMIT_PER_WINDOW)
    assert m.mint_limit == m.emission_limit == MAX_MINT_LIMIT_PER_WINDOW


def test_a_pause_expires_and_cools_down() -> None:
    m = _model()
    m.pause()
    assert m.paused
    m.now += MAX_PAUSE - 1
    assert m.paused
    m.now += 1
    assert not m.paused
    with pytest.raises(ModelRevert) as exc:
        m.pause()
    assert exc.value.args[1] == T0 + MAX_PAUSE + PAUSE_COOLDOWN
    m.now = T0 + MAX_PAUSE + PAUSE_COOLDOWN
    m.pause()
    m.unpause()
    assert not m.paused
    with pytest.raises(ModelRevert) as exc:
        m.pause()
    assert exc.value.name == "PauseCooldown"


def test_an_oracle_gap_is_not_a_collateral_halt() -> None:
    m = _model()
    m.cmp["0xA"] = 1000 * CMP
    m.burn("0xA", 1000 * CMP, 0)
    m.now += 1
    m.oracle = Oracle(price=9050 * 99_750_000_000_000, confidence=0, updated_at=m.now)
    assert m.sync_status() == Status.WARNING
    m.now += 31
    assert m.sync_status() == Status.HALT_ORACLE
    assert m.cr_status == Status.WARNING
    m.oracle = Oracle(price=9050 * 99_750_000_000_000, confidence=0, updated_at=m.now)
    assert m.sync_status() == Status.WARNING

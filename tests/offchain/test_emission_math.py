"""Rounding properties of the emission arithmetic (the Python mirror of EmissionMath), over random inputs."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bme.economics.emission import (
    BPS,
    WAD,
    InvalidSchedule,
    Schedule,
    Segment,
    decayed_down,
    reward_down,
    rpow_down,
    segment_bound_up,
)

pytestmark = pytest.mark.pure


@given(st.integers(0, BPS - 1), st.integers(0, 5_000))
def test_rpow_down_never_exceeds_the_exact_power(decay: int, n: int) -> None:
    x = (BPS - decay) * (WAD // BPS)
    exact = Fraction(x, WAD) ** n
    assert Fraction(rpow_down(x, n), WAD) <= exact


@given(st.integers(1, 2**96 - 1), st.lists(st.integers(1, 2**100), min_size=1, max_size=20))
def test_shares_never_exceed_the_emission_and_lose_under_one_unit_each(
    emission: int, works: list[int]
) -> None:
    total = sum(works)
    paid = sum(reward_down(emission, w, total) for w in works)
    assert emission - len(works) < paid <= emission


@given(
    st.integers(1, 10**24),
    st.integers(1, BPS - 1),
    st.integers(1, 20),
    st.integers(1, 400),
)
def test_a_decaying_segment_never_emits_more_than_its_bound(
    amount: int, decay: int, period: int, epochs: int
) -> None:
    emitted = sum(decayed_down(amount, decay, e // period) for e in range(epochs))
    assert emitted <= segment_bound_up(amount, epochs, decay, period)
    assert emitted <= segment_bound_up(amount, 0, decay, period)  # the endless bound covers every prefix


def test_schedule_emission_by_epoch_and_its_checks() -> None:
    s = Schedule((Segment(2, 10), Segment(0, 8, 5_000, 3)), hard_cap=2 * 10 + 48)
    assert [s.emission_at(e) for e in range(10)] == [10, 10, 8, 8, 8, 4, 4, 4, 2, 2]
    assert s.bound == 68 and s.mint_limit == 50
    with pytest.raises(InvalidSchedule) as err:
        Schedule((Segment(2, 10), Segment(0, 8, 5_000, 3)), hard_cap=67)
    assert err.value.args == ("EmissionScheduleExceedsCap", 68, 67)
    with pytest.raises(InvalidSchedule) as err:
        Schedule((Segment(0, 1), Segment(2, 10)), hard_cap=10**30)
    assert err.value.args == ("EmissionScheduleInvalidSegment", 0)

"""The manual oracle's step bound as the model mirrors it (`step_within`), and the bounded walk a feeder
pushes to reach a price further away (`bounded_steps`): every step is one the oracle accepts, the walk ends at
the target, and no step is smaller than the bound allows (so the walk is as short as it can be)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bme.economics.model import ModelRevert, Oracle, ProtocolModel
from bme.economics.oracle import DEFAULT_MAX_STEP_BPS, allowed_step_bps, bounded_steps, step_within

pytestmark = pytest.mark.pure

CMP = 10**18


def test_step_within_matches_the_contract_at_its_edges() -> None:
    assert step_within(CMP, 11 * CMP // 10, DEFAULT_MAX_STEP_BPS)
    assert step_within(CMP, 9 * CMP // 10, DEFAULT_MAX_STEP_BPS)
    assert not step_within(CMP, 11 * CMP // 10 + 1, DEFAULT_MAX_STEP_BPS)
    assert not step_within(CMP, 9 * CMP // 10 - 1, DEFAULT_MAX_STEP_BPS)
    assert step_within(0, 10**30, DEFAULT_MAX_STEP_BPS)  # the first price is free
    assert step_within(CMP, 1, 0)  # no bound


def test_a_crash_to_one_percent_takes_44_steps_of_10_percent() -> None:
    steps = bounded_steps(CMP, CMP // 100, DEFAULT_MAX_STEP_BPS)
    assert len(steps) == 44 and steps[-1] == CMP // 100
    assert steps[0] == 9 * CMP // 10


@given(
    last=st.integers(10**6, 2**100),
    ratio=st.fractions(min_value=0.001, max_value=1000),
    bps=st.sampled_from([50, 1_000, 5_000, 10_000, 1_000_000]),
)
def test_bounded_steps_walk_to_the_target_in_accepted_steps(last: int, ratio: Fraction, bps: int) -> None:
    target = max(int(last * ratio), 1)
    steps = bounded_steps(last, target, bps)
    assert steps[-1] == target
    previous = last
    for step in steps:
        assert step_within(previous, step, bps)
        previous = step
    for before, step in zip([last, *steps], steps[:-1], strict=False):
        assert abs(step - before) == before * bps // 10_000  # every step but the last is as large as allowed


def test_the_model_refuses_a_push_past_the_bound_and_keeps_the_last_reading() -> None:
    model = ProtocolModel(now=100, window_start=0, oracle=Oracle(max_step_bps=DEFAULT_MAX_STEP_BPS))
    model.push_price(CMP, 0, 90)
    with pytest.raises(ModelRevert) as refused:
        model.push_price(CMP // 2, 0, 95)
    assert refused.value.name == "ManualPriceOracleStepTooLarge"
    assert (model.oracle.price, model.oracle.updated_at) == (CMP, 90)
    for i, price in enumerate(bounded_steps(CMP, CMP // 2, DEFAULT_MAX_STEP_BPS)):
        model.push_price(price, 0, 91 + i)
    assert model.oracle.price == CMP // 2


def test_with_a_step_period_the_model_scales_the_step_by_the_time_since_the_last_push() -> None:
    assert step_within(CMP, CMP * 101 // 100, DEFAULT_MAX_STEP_BPS, 6, 60)
    assert not step_within(CMP, CMP * 101 // 100 + 1, DEFAULT_MAX_STEP_BPS, 6, 60)
    assert step_within(CMP, 11 * CMP // 10, DEFAULT_MAX_STEP_BPS, 600, 60)  # a full step at most
    assert not step_within(CMP, 11 * CMP // 10 + 1, DEFAULT_MAX_STEP_BPS, 600, 60)
    assert allowed_step_bps(DEFAULT_MAX_STEP_BPS, 6, 60) == 100
    model = ProtocolModel(now=1_000, window_start=0, oracle=Oracle(step_period=60))
    model.push_price(CMP, 0, 900)
    with pytest.raises(ModelRevert) as refused:
        model.push_price(9 * CMP // 10, 0, 901)
    assert refused.value.args == ("ManualPriceOracleStepTooLarge", 9 * CMP // 10, CMP, 16)
    model.push_price(9 * CMP // 10, 0, 960)
    assert model.oracle.price == 9 * CMP // 10

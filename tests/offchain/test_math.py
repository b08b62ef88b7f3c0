"""Rounding properties of the economic arithmetic (the Python mirror of BmeMath), over random inputs."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bme.economics import math as m
from bme.economics.status import Status, next_status

pytestmark = pytest.mark.pure

tokens = st.integers(0, 10**30)
prices = st.integers(10**12, 10**24)  # $0.000001 to $1,000,000 per CMP
credits = st.integers(0, 10**18)
spreads = st.integers(0, 4999)


@given(credits, prices, spreads)
def test_tokens_up_always_buy_at_least_the_credits(c: int, price: int, spread: int) -> None:
    assert m.to_credits_down(m.to_tokens_up(c, price, spread), price, spread) >= c


@given(tokens, prices)
def test_burn_then_redeem_at_one_price_never_returns_more_tokens(t: int, price: int) -> None:
    c = m.to_credits_down(t, price, 0)
    assert m.to_tokens_down(c, price, 0) <= t


@given(tokens, prices, spreads, spreads)
def test_a_wider_spread_never_gives_more(t: int, price: int, s1: int, s2: int) -> None:
    lo, hi = sorted((s1, s2))
    assert m.to_credits_down(t, price, hi) <= m.to_credits_down(t, price, lo)


@given(st.integers(0, 2**32), st.integers(0, 2**32), st.integers(0, 2**40), st.integers(0, 2**40))
def test_job_cost_rounds_up_by_less_than_one_unit(i: int, o: int, pi: int, po: int) -> None:
    exact = Fraction(i * pi + o * po, 10**6)  # a float would round sums above 2**53
    cost = m.job_cost_up(i, o, pi, po)
    assert exact <= cost < exact + 1


@given(prices, st.integers(0, 10**6), st.integers(0, 10))
def test_conservative_prices_bracket_the_oracle_price(price: int, conf: int, k: int) -> None:
    assert m.burn_price_down(price, conf, k) <= price <= m.redeem_price_up(price, conf, k)


def test_status_hysteresis_needs_a_margin_to_recover() -> None:
    args = (9500, 9000, 100)
    assert next_status(Status.HEALTHY, True, 8999, *args) == Status.HALT_CR
    assert next_status(Status.HALT_CR, True, 9050, *args) == Status.HALT_CR
    assert next_status(Status.HALT_CR, True, 9100, *args) == Status.WARNING
    assert next_status(Status.WARNING, True, 9550, *args) == Status.WARNING
    assert next_status(Status.WARNING, True, 9600, *args) == Status.HEALTHY
    assert next_status(Status.HEALTHY, True, 9550, *args) == Status.HEALTHY
    assert next_status(Status.HEALTHY, False, 20_000, *args) == Status.HALT_ORACLE

"""The one formatter of amounts and times that every message, status line and table uses."""

from __future__ import annotations

import time

import pytest

from bme import display

pytestmark = pytest.mark.pure


@pytest.mark.parametrize(
    ("value", "decimals", "unit", "text"),
    [
        (0, 18, "CMP", "0 CMP"),
        (10_025_062_656_641_604_011, 18, "CMP", "10.025062656641604011 CMP"),
        (1_000 * 10**18, 18, "CMP", "1,000 CMP"),
        (2_000_000 * 10**18 + 5 * 10**17, 18, "CMP", "2,000,000.5 CMP"),
        (1, 18, "ETH", "0.000000000000000001 ETH"),
        (3_000_000, 6, "CRD", "3 CRD"),
        (10_000_001, 6, "CRD", "10.000001 CRD"),
        (-1_500_000, 6, "CRD", "-1.5 CRD"),
    ],
)
def test_amounts_are_exact_trimmed_and_carry_their_unit(
    value: int, decimals: int, unit: str, text: str
) -> None:
    assert display.amount(value, decimals, unit) == text


def test_the_named_units() -> None:
    assert display.cmp(10**18) == "1 CMP"
    assert display.crd(10**6 + 1) == "1.000001 CRD"
    assert display.eth(25 * 10**13) == "0.00025 ETH"
    assert display.usd(1_370_000_000_000_000_000, 18) == "$1.37"
    assert display.usd(97, 6) == "$0.000097"
    assert display.approximate(463_503_121_628_712, 18, "ETH") == "0.00047 ETH"  # rounded up, never down
    assert display.approximate(460_000_000_000_000, 18, "ETH") == "0.00046 ETH"
    assert display.approximate(7, 18, "ETH") == "0.000000000000000007 ETH"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (47, "47 s"), (119, "119 s"), (720, "12 min"), (3 * 3600 + 300, "3 h 5 min"), (7200, "2 h")],
)
def test_durations(seconds: int, text: str) -> None:
    assert display.duration(seconds) == text
    assert display.duration(-seconds) == text


def test_times_are_local_date_times_with_their_distance_from_the_chains_clock() -> None:
    ts = 1_700_000_000
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
    assert display.local_time(ts).startswith(local)
    assert display.when(ts) == display.local_time(ts)
    assert display.when(ts, ts - 720) == f"{display.local_time(ts)} (in 12 min)"
    assert display.relative(ts - 47, ts) == "47 s ago"
    assert display.relative(ts, ts) == "now"
    assert display.deadline(ts, ts - 720) == f"{display.local_time(ts)} (in 12 min)"
    assert display.deadline(ts, ts + 1) == f"{display.local_time(ts)} (expired)"
    assert display.local_time(2**200) == f"time {2**200}"  # any uint256 a contract reverts with

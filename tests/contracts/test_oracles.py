"""Price sources (ManualPriceOracle, ChainlinkPriceOracle over MockAggregatorV3) and the BME core's checks on
the price it reads: staleness, confidence, positivity, and the HaltOracle status."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CMP, Deployed
from tests.contracts.helpers import (
    HALT_CR,
    HALT_ORACLE,
    HEALTHY,
    WARNING,
    ZERO_ADDRESS,
    Governance,
    advance,
    call_reverts,
    event_args,
    head_time,
    next_tx_at,
    normalised,
    price_at,
    push,
    reverts,
)

MAX_AGE = 30  # BmeParameters.ORACLE_MAX_AGE
MAX_CONFIDENCE_BPS = 150  # BmeParameters.ORACLE_MAX_CONFIDENCE_BPS
FEED_STALENESS = 3600  # the Chainlink adapter's own bound in these tests
FEED_BAND_BPS = 50


def chainlink(project: Any, p: Deployed, decimals: int) -> tuple[Any, Any]:
    """A mock feed with `decimals` and an adapter over it (3600 s staleness, 50 bps band)."""
    feed = project.MockAggregatorV3.deploy(decimals, sender=p.deployer)
    adapter = project.ChainlinkPriceOracle.deploy(feed, FEED_STALENESS, FEED_BAND_BPS, sender=p.deployer)
    return feed, adapter


# ---------------------------------------------------------------- ManualPriceOracle


def test_manual_oracle_push_records_price_confidence_and_time(protocol: Deployed, chain: Any) -> None:
    oracle = protocol.oracle
    ts = advance(chain, 5)
    tx = oracle.pushPrice(3 * CMP // 2, CMP // 100, ts, sender=protocol.deployer)
    assert event_args(tx, oracle.PricePushed) == [
        normalised(price=3 * CMP // 2, confidence=CMP // 100, updatedAt=ts)
    ]
    assert oracle.latestPrice() == (3 * CMP // 2, ts, CMP // 100)


def test_manual_oracle_push_at_the_block_time_is_accepted(protocol: Deployed, chain: Any) -> None:
    t = head_time(chain) + 10
    price_at(protocol, chain, t, 2 * CMP)
    assert protocol.oracle.latestPrice() == (2 * CMP, t, 0)


def test_manual_oracle_push_zero_price_reverts(protocol: Deployed, chain: Any) -> None:
    before = protocol.oracle.latestPrice()
    ts = advance(chain, 5)
    with reverts(protocol.oracle.ManualPriceOracleZeroPrice):
        protocol.oracle.pushPrice(0, 0, ts, sender=protocol.deployer)
    assert protocol.oracle.latestPrice() == before


@pytest.mark.parametrize("offset", [0, -1])
def test_manual_oracle_push_not_after_the_last_timestamp_reverts(
    protocol: Deployed, chain: Any, offset: int
) -> None:
    last = push(protocol, chain, CMP)
    advance(chain, 5)
    with reverts(protocol.oracle.ManualPriceOracleBadTimestamp, updatedAt=last + offset, last=last):
        protocol.oracle.pushPrice(2 * CMP, 0, last + offset, sender=protocol.deployer)
    assert protocol.oracle.latestPrice() == (CMP, last, 0)


def test_manual_oracle_push_future_timestamp_reverts(protocol: Deployed, chain: Any) -> None:
    last = push(protocol, chain, CMP)
    t = last + 10
    next_tx_at(chain, t)
    with reverts(protocol.oracle.ManualPriceOracleBadTimestamp, updatedAt=t + 1, last=last):
        protocol.oracle.pushPrice(2 * CMP, 0, t + 1, sender=protocol.deployer)
    assert protocol.oracle.latestPrice() == (CMP, last, 0)


@pytest.mark.parametrize(("price", "confidence"), [(2**128, 0), (CMP, 2**88)])
def test_manual_oracle_push_value_too_large_for_its_field_reverts(
    protocol: Deployed, chain: Any, price: int, confidence: int
) -> None:
    ts = advance(chain, 5)
    with reverts(protocol.oracle.ManualPriceOracleOverflow):
        protocol.oracle.pushPrice(price, confidence, ts, sender=protocol.deployer)


def test_manual_oracle_push_largest_values_is_accepted(protocol: Deployed, chain: Any) -> None:
    ts = advance(chain, 5)
    protocol.oracle.pushPrice(2**128 - 1, 2**88 - 1, ts, sender=protocol.deployer)
    assert protocol.oracle.latestPrice() == (2**128 - 1, ts, 2**88 - 1)


def test_manual_oracle_push_by_non_feeder_reverts(protocol: Deployed, chain: Any) -> None:
    user = protocol.users[0]
    ts = advance(chain, 5)
    with reverts(
        protocol.oracle.AccessControlUnauthorizedAccount,
        account=user,
        neededRole=protocol.oracle.FEEDER_ROLE(),
    ):
        protocol.oracle.pushPrice(CMP, 0, ts, sender=user)


def test_manual_oracle_feeder_role_is_granted_and_revoked_by_governance(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    oracle, feeder = protocol.oracle, protocol.users[3]
    feeder_role = oracle.FEEDER_ROLE()
    # The deployer holds no admin role: it cannot appoint feeders itself.
    with reverts(oracle.AccessControlUnauthorizedAccount, account=protocol.deployer):
        oracle.grantRole(feeder_role, feeder, sender=protocol.deployer)

    gov.execute(oracle.grantRole, feeder_role, feeder)
    ts = advance(chain, 1)
    oracle.pushPrice(7 * CMP, 0, ts, sender=feeder)
    assert oracle.latestPrice() == (7 * CMP, ts, 0)

    gov.execute(oracle.revokeRole, feeder_role, feeder)
    ts = advance(chain, 1)
    with reverts(oracle.AccessControlUnauthorizedAccount, account=feeder, neededRole=feeder_role):
        oracle.pushPrice(8 * CMP, 0, ts, sender=feeder)


# ---------------------------------------------------------------- ChainlinkPriceOracle


def test_chainlink_oracle_reports_its_configuration(protocol: Deployed, project: Any) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    assert adapter.feed() == feed.address
    assert adapter.maxStaleness() == FEED_STALENESS
    assert adapter.confidenceBps() == FEED_BAND_BPS


@pytest.mark.parametrize(
    ("decimals", "answer", "price", "confidence"),
    [
        # $1.23456789 with 8 decimals, scaled up by 1e10; the band is 50 bps of it.
        (8, 123_456_789, 1_234_567_890_000_000_000, 6_172_839_450_000_000),
        (18, 1_234_567_890_123_456_789, 1_234_567_890_123_456_789, 6_172_839_450_617_283),
        # 20 decimals scale down by 100, rounding down: the last two digits are dropped.
        (20, 123_456_789_012_345_678_999, 1_234_567_890_123_456_789, 6_172_839_450_617_283),
    ],
)
def test_chainlink_oracle_normalises_feed_decimals_to_18(
    protocol: Deployed, project: Any, chain: Any, decimals: int, answer: int, price: int, confidence: int
) -> None:
    feed, adapter = chainlink(project, protocol, decimals)
    ts = head_time(chain)
    feed.setAnswer(answer, ts, sender=protocol.deployer)
    assert adapter.latestPrice() == (price, ts, confidence)


def test_chainlink_oracle_tiny_answer_at_20_decimals_scales_to_zero(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    feed, adapter = chainlink(project, protocol, 20)
    ts = head_time(chain)
    feed.setAnswer(99, ts, sender=protocol.deployer)
    # Positive at the feed's scale, zero at 18 decimals: the BME core refuses a zero price on its own.
    assert adapter.latestPrice() == (0, ts, 0)


@pytest.mark.parametrize("answer", [0, -1, -(10**8)])
def test_chainlink_oracle_non_positive_answer_reverts(
    protocol: Deployed, project: Any, chain: Any, answer: int
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    feed.setAnswer(answer, head_time(chain), sender=protocol.deployer)
    call_reverts(adapter.ChainlinkPriceOracleNonPositive, adapter.latestPrice, answer=answer)


@pytest.mark.parametrize("age", [FEED_STALENESS + 60, "zero", "future"])
def test_chainlink_oracle_stale_answer_reverts(
    protocol: Deployed, project: Any, chain: Any, age: Any
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    now = head_time(chain)
    updated_at = {"zero": 0, "future": now + 600}.get(age, now - FEED_STALENESS - 60)
    feed.setAnswer(10**8, updated_at, sender=protocol.deployer)
    call_reverts(
        adapter.ChainlinkPriceOracleStale,
        adapter.latestPrice,
        updatedAt=updated_at,
        maxStaleness=FEED_STALENESS,
    )


def test_chainlink_oracle_answer_within_its_staleness_is_accepted(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    updated_at = head_time(chain) - FEED_STALENESS + 60
    feed.setAnswer(2 * 10**8, updated_at, sender=protocol.deployer)
    assert adapter.latestPrice() == (2 * CMP, updated_at, 2 * CMP * FEED_BAND_BPS // 10_000)


@pytest.mark.parametrize("bad", ["zero feed", "zero staleness", "band of 100 %"])
def test_chainlink_oracle_invalid_config_reverts(protocol: Deployed, project: Any, bad: str) -> None:
    feed = project.MockAggregatorV3.deploy(8, sender=protocol.deployer)
    args = {
        "zero feed": (ZERO_ADDRESS, FEED_STALENESS, FEED_BAND_BPS),
        "zero staleness": (feed.address, 0, FEED_BAND_BPS),
        "band of 100 %": (feed.address, FEED_STALENESS, 10_000),
    }[bad]
    with reverts(project.ChainlinkPriceOracle.ChainlinkPriceOracleInvalidConfig):
        project.ChainlinkPriceOracle.deploy(*args, sender=protocol.deployer)


def test_chainlink_oracle_band_just_below_100_percent_is_accepted(protocol: Deployed, project: Any) -> None:
    feed = project.MockAggregatorV3.deploy(8, sender=protocol.deployer)
    adapter = project.ChainlinkPriceOracle.deploy(feed, FEED_STALENESS, 9_999, sender=protocol.deployer)
    assert adapter.confidenceBps() == 9_999


# ---------------------------------------------------------------- the BME core's price checks


def test_bme_burn_with_price_exactly_max_age_old_succeeds(protocol: Deployed, chain: Any) -> None:
    t0 = head_time(chain) + 5
    price_at(protocol, chain, t0, CMP)
    next_tx_at(chain, t0 + MAX_AGE)
    protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    assert protocol.credit.balanceOf(protocol.users[0]) == 99_750_000


def test_bme_burn_with_stale_price_reverts(protocol: Deployed, chain: Any) -> None:
    t0 = head_time(chain) + 5
    price_at(protocol, chain, t0, CMP)
    next_tx_at(chain, t0 + MAX_AGE + 1)
    with reverts(protocol.bme.BmeOracleStale, updatedAt=t0, maxAge=MAX_AGE):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    assert protocol.credit.totalSupply() == 0


def test_bme_views_needing_a_price_revert_when_stale(protocol: Deployed, chain: Any) -> None:
    t0 = push(protocol, chain, CMP)
    advance(chain, 120)
    bme = protocol.bme
    for view in (bme.checkedPrice, bme.collateralRatioBps):
        call_reverts(bme.BmeOracleStale, view, updatedAt=t0, maxAge=MAX_AGE)
    for quote in (bme.quoteBurn, bme.quoteTokensForCredits, bme.quoteRedeem):
        call_reverts(bme.BmeOracleStale, quote, 100 * CMP, updatedAt=t0, maxAge=MAX_AGE)


def test_bme_burn_with_uncertain_price_reverts(protocol: Deployed, chain: Any) -> None:
    # A band of 151 bps of the price, above the 150 bps accepted.
    confidence = CMP * 151 // 10_000
    push(protocol, chain, CMP, confidence)
    with reverts(protocol.bme.BmeOracleUncertain, price=CMP, confidence=confidence, maxConfidenceBps=150):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


def test_bme_burn_with_widest_accepted_band_prices_two_bands_low(protocol: Deployed, chain: Any) -> None:
    # A band of exactly 150 bps is accepted; the burn is priced at 1.00 - 2 * 0.015 = $0.97.
    push(protocol, chain, CMP, CMP * MAX_CONFIDENCE_BPS // 10_000)
    tx = protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    assert protocol.credit.balanceOf(protocol.users[0]) == 96_757_500  # 100 * 0.97 * 0.9975
    [minted] = event_args(tx, protocol.bme.CreditsMinted)
    assert minted["price"] == 97 * CMP // 100


def test_bme_burn_with_zero_price_reverts(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    # A fresh manual oracle that was never fed reports a price of zero (and a time of zero).
    empty = project.ManualPriceOracle.deploy(protocol.timelock, protocol.deployer, sender=protocol.deployer)
    gov.execute(protocol.bme.setOracle, empty)
    with reverts(protocol.bme.BmeOracleNonPositive):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


def test_bme_burn_with_reverting_oracle_reverts_non_positive(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    gov.execute(protocol.bme.setOracle, adapter)
    feed.setAnswer(-1, head_time(chain), sender=protocol.deployer)
    with reverts(protocol.bme.BmeOracleNonPositive):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


def test_bme_burn_with_chainlink_answer_scaled_to_zero_reverts_non_positive(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, adapter = chainlink(project, protocol, 20)
    gov.execute(protocol.bme.setOracle, adapter)
    feed.setAnswer(99, head_time(chain), sender=protocol.deployer)
    with reverts(protocol.bme.BmeOracleNonPositive):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


def test_bme_burn_prices_from_chainlink_adapter_less_two_bands(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    gov.execute(protocol.bme.setOracle, adapter)
    feed.setAnswer(2 * 10**8, head_time(chain), sender=protocol.deployer)
    protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    # $2.00 with a 50 bps band ($0.01): priced at $1.98, less the 25 bps spread.
    assert protocol.credit.balanceOf(protocol.users[0]) == 197_505_000


def test_bme_burn_with_chainlink_answer_older_than_max_age_reverts_stale(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    gov.execute(protocol.bme.setOracle, adapter)
    # Fresh enough for the adapter's 3600 s heartbeat, too old for the core's 30 s.
    updated_at = head_time(chain) - 100
    feed.setAnswer(10**8, updated_at, sender=protocol.deployer)
    with reverts(protocol.bme.BmeOracleStale, updatedAt=updated_at, maxAge=MAX_AGE):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


# ---------------------------------------------------------------- HaltOracle


def status_changes(tx: Any, p: Deployed) -> list[dict[str, Any]]:
    return event_args(tx, p.bme.StatusChanged)


def test_sync_status_with_good_price_keeps_healthy(protocol: Deployed, fresh_price: int) -> None:
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HEALTHY
    assert status_changes(tx, protocol) == []


def test_sync_status_with_stale_price_records_halt_oracle(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    advance(chain, MAX_AGE + 10)
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE
    assert status_changes(tx, protocol) == [normalised(previous=HEALTHY, current=HALT_ORACLE, crBps=0)]
    # Recorded once: a second failing read changes nothing.
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE
    assert status_changes(tx, protocol) == []


def test_sync_status_with_uncertain_price_records_halt_oracle(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP, CMP * 151 // 10_000)
    protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE


def test_sync_status_with_zero_price_records_halt_oracle(
    protocol: Deployed, project: Any, gov: Governance
) -> None:
    empty = project.ManualPriceOracle.deploy(protocol.timelock, protocol.deployer, sender=protocol.deployer)
    gov.execute(protocol.bme.setOracle, empty)
    protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE


def test_sync_status_leaves_halt_oracle_once_the_price_is_good(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    advance(chain, MAX_AGE + 10)
    protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE

    push(protocol, chain, CMP)
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HEALTHY
    # Nothing is outstanding: the collateral ratio is unbounded.
    assert status_changes(tx, protocol) == [
        normalised(previous=HALT_ORACLE, current=HEALTHY, crBps=2**256 - 1)
    ]


def test_burn_with_good_price_leaves_halt_oracle(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    advance(chain, MAX_AGE + 10)
    protocol.bme.syncStatus(sender=protocol.users[0])
    push(protocol, chain, CMP)

    tx = protocol.bme.burn(1000 * CMP, 0, sender=protocol.users[0])

    # 1000 CMP backing 997.5 CRD at $1: a collateral ratio of 10025 bps.
    assert status_changes(tx, protocol) == [normalised(previous=HALT_ORACLE, current=HEALTHY, crBps=10_025)]
    assert protocol.bme.status() == HEALTHY


def test_sync_status_leaving_halt_oracle_resumes_the_collateral_status(
    protocol: Deployed, chain: Any
) -> None:
    push(protocol, chain, CMP)
    protocol.bme.burn(1000 * CMP, 0, sender=protocol.users[0])
    advance(chain, MAX_AGE + 10)
    protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE

    # CR = 1000 CMP * P / 997.5 CRD: at P = 9050 * 0.99750e14 it is 9050 bps, above the halt threshold (9000)
    # but below halt + hysteresis (9100). The outage was no collateral halt: Healthy before it, Warning now.
    push(protocol, chain, 9050 * 99_750_000_000_000)
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert status_changes(tx, protocol) == [normalised(previous=HALT_ORACLE, current=WARNING, crBps=9050)]

    # A collateral halt outlasts an outage: leaving it still needs the hysteresis margin.
    push(protocol, chain, 8999 * 99_750_000_000_000)
    protocol.bme.syncStatus(sender=protocol.users[0])
    advance(chain, MAX_AGE + 10)
    protocol.bme.syncStatus(sender=protocol.users[0])
    assert (protocol.bme.status(), protocol.bme.collateralStatus()) == (HALT_ORACLE, HALT_CR)
    push(protocol, chain, 9050 * 99_750_000_000_000)
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert status_changes(tx, protocol) == [normalised(previous=HALT_ORACLE, current=HALT_CR, crBps=9050)]
    push(protocol, chain, 9100 * 99_750_000_000_000)
    tx = protocol.bme.syncStatus(sender=protocol.users[0])
    assert status_changes(tx, protocol) == [normalised(previous=HALT_CR, current=WARNING, crBps=9100)]

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

MAX_AGE = 30  # ManualPriceOracle.DEFAULT_MAX_AGE, as deployed
MAX_CONFIDENCE_BPS = 150  # BmeParameters.ORACLE_MAX_CONFIDENCE_BPS
MAX_STEP_BPS = 1000  # ManualPriceOracle.DEFAULT_MAX_STEP_BPS
FEED_STALENESS = 3600  # the Chainlink feed's heartbeat in these tests
FEED_BAND_BPS = 50
MIN_ANSWER, MAX_ANSWER = 1, 10**40  # at the feed's decimals: wide enough for every answer of these tests
GRACE = 3600  # Chainlink's example grace period after the sequencer is back up


def chainlink_config(source: Any, **overrides: Any) -> tuple[Any, ...]:
    """The adapter's `Config` tuple: 3600 s heartbeat, 50 bps band, wide bounds, no sequencer feed."""
    config = {
        "feed": source.address,
        "heartbeat": FEED_STALENESS,
        "confidenceBps": FEED_BAND_BPS,
        "minAnswer": MIN_ANSWER,
        "maxAnswer": MAX_ANSWER,
        "sequencerUptimeFeed": ZERO_ADDRESS,
        "gracePeriod": 0,
    }
    config.update(overrides)
    return tuple(config.values())


def chainlink(project: Any, p: Deployed, decimals: int, **overrides: Any) -> tuple[Any, Any]:
    """A mock feed with `decimals` and an adapter over it (`chainlink_config`, with `overrides`)."""
    feed = project.MockAggregatorV3.deploy(decimals, sender=p.deployer)
    adapter = project.ChainlinkPriceOracle.deploy(chainlink_config(feed, **overrides), sender=p.deployer)
    return feed, adapter


def manual_oracle(
    project: Any, p: Deployed, max_age: int = MAX_AGE, max_step_bps: int = MAX_STEP_BPS, step_period: int = 0
) -> Any:
    """A manual oracle fed by the deployer, governed by the timelock."""
    return project.ManualPriceOracle.deploy(
        p.timelock, p.deployer, max_age, max_step_bps, step_period, sender=p.deployer
    )


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


def test_manual_oracle_reports_its_bounds(protocol: Deployed, project: Any) -> None:
    oracle = manual_oracle(project, protocol, max_age=45, max_step_bps=250, step_period=600)
    assert (oracle.maxAge(), oracle.maxStepBps(), oracle.stepPeriod()) == (45, 250, 600)
    # The protocol's own oracle: 30 s, and no step bound (these tests' deployment, see tests/conftest.py).
    assert (protocol.oracle.maxAge(), protocol.oracle.maxStepBps(), protocol.oracle.stepPeriod()) == (
        MAX_AGE,
        0,
        0,
    )


@pytest.mark.parametrize(
    "bad", ["zero admin", "zero feeder", "zero max age", "max age past uint32", "step", "period past uint32"]
)
def test_manual_oracle_invalid_config_reverts(protocol: Deployed, project: Any, bad: str) -> None:
    args = {
        "zero admin": (ZERO_ADDRESS, protocol.deployer, MAX_AGE, MAX_STEP_BPS, 0),
        "zero feeder": (protocol.timelock, ZERO_ADDRESS, MAX_AGE, MAX_STEP_BPS, 0),
        "zero max age": (protocol.timelock, protocol.deployer, 0, MAX_STEP_BPS, 0),
        "max age past uint32": (protocol.timelock, protocol.deployer, 2**32, MAX_STEP_BPS, 0),
        "step": (protocol.timelock, protocol.deployer, MAX_AGE, 1_000_001, 0),
        "period past uint32": (protocol.timelock, protocol.deployer, MAX_AGE, MAX_STEP_BPS, 2**32),
    }[bad]
    with reverts(project.ManualPriceOracle.ManualPriceOracleInvalidConfig):
        project.ManualPriceOracle.deploy(*args, sender=protocol.deployer)


def bounded_oracle(project: Any, p: Deployed, chain: Any, first: int) -> tuple[Any, int]:
    """A manual oracle with the default 10 % step bound, fed `first` (the first price is free), and when."""
    oracle = manual_oracle(project, p)
    ts = advance(chain, 1)
    oracle.pushPrice(first, 0, ts, sender=p.deployer)
    return oracle, ts


@pytest.mark.parametrize("price", [11 * CMP // 10, 9 * CMP // 10, CMP + 1, CMP])
def test_manual_oracle_push_within_the_step_bound_is_accepted(
    protocol: Deployed, project: Any, chain: Any, price: int
) -> None:
    oracle, _ = bounded_oracle(project, protocol, chain, CMP)
    ts = advance(chain, 1)
    oracle.pushPrice(price, 0, ts, sender=protocol.deployer)
    assert oracle.latestPrice() == (price, ts, 0)


@pytest.mark.parametrize("price", [11 * CMP // 10 + 1, 9 * CMP // 10 - 1, CMP // 100, 1000 * CMP])
def test_manual_oracle_push_past_the_step_bound_reverts(
    protocol: Deployed, project: Any, chain: Any, price: int
) -> None:
    # The attack: a feeder (its key stolen, or wrong) crashes or pumps the price in one push, to buy CRD cheap
    # or redeem CMP dear. The push is refused and the last price stands.
    oracle, t0 = bounded_oracle(project, protocol, chain, CMP)
    ts = advance(chain, 1)
    with reverts(oracle.ManualPriceOracleStepTooLarge, price=price, lastPrice=CMP, allowedBps=MAX_STEP_BPS):
        oracle.pushPrice(price, 0, ts, sender=protocol.deployer)
    assert oracle.latestPrice() == (CMP, t0, 0)


def test_manual_oracle_crash_succeeds_without_a_step_bound_and_takes_steps_with_one(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    # Without the bound (this test deployment's oracle), one push takes the price from $1 to $0.01.
    push(protocol, chain, CMP)
    push(protocol, chain, CMP // 100)
    assert protocol.oracle.latestPrice()[0] == CMP // 100
    # With it, the same move takes 44 pushes of at most 10 % (0.9^44 < 0.01), one per second at most: each one
    # is an event that watchers and the guardian see, and a burn at a reading mid-way is priced mid-way.
    oracle, _ = bounded_oracle(project, protocol, chain, CMP)
    price, pushes = CMP, 0
    while price > CMP // 100:
        price = max(price - price * MAX_STEP_BPS // 10_000, CMP // 100)
        oracle.pushPrice(price, 0, advance(chain, 1), sender=protocol.deployer)
        pushes += 1
    assert pushes == 44 and oracle.latestPrice()[0] == CMP // 100


def test_manual_oracle_with_a_step_period_bounds_the_rate_of_moves(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    # 10 % per 60 s: a push 6 s after the last one may move the price 1 %, one a minute or more later 10 %.
    oracle = manual_oracle(project, protocol, step_period=60)
    t0 = advance(chain, 1)
    oracle.pushPrice(CMP, 0, t0, sender=protocol.deployer)
    next_tx_at(chain, t0 + 6)
    with reverts(
        oracle.ManualPriceOracleStepTooLarge, price=CMP * 101 // 100 + 1, lastPrice=CMP, allowedBps=100
    ):
        oracle.pushPrice(CMP * 101 // 100 + 1, 0, t0 + 6, sender=protocol.deployer)
    oracle.pushPrice(CMP * 101 // 100, 0, t0 + 6, sender=protocol.deployer)
    next_tx_at(chain, t0 + 600)
    oracle.pushPrice(CMP * 101 // 100 * 11 // 10, 0, t0 + 600, sender=protocol.deployer)  # a full step
    assert oracle.latestPrice()[0] == CMP * 101 // 100 * 11 // 10


def test_manual_oracle_rapid_walk_succeeds_per_push_and_fails_with_a_step_period(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    """The attack on a per-push bound alone: a feeder walks the price down 10 % a second (observation times a
    second apart, even backdated into one block after a silence), 99 % in 44 s. With a step period of 60 s the
    first such step is already refused: in one second the price may move a sixtieth of a step."""
    walk = bounded_oracle(project, protocol, chain, CMP)[0]
    timed = manual_oracle(project, protocol, step_period=60)
    t0 = advance(chain, 1)
    timed.pushPrice(CMP, 0, t0, sender=protocol.deployer)
    start = advance(chain, 1)
    price = CMP
    for i in range(44):
        price -= price * MAX_STEP_BPS // 10_000
        walk.pushPrice(price, 0, start + i, sender=protocol.deployer)
        advance(chain, 1)
    assert walk.latestPrice()[0] < CMP // 100
    step = CMP - CMP * MAX_STEP_BPS // 10_000
    with reverts(
        timed.ManualPriceOracleStepTooLarge, price=step, lastPrice=CMP, allowedBps=MAX_STEP_BPS // 60
    ):
        timed.pushPrice(step, 0, t0 + 1, sender=protocol.deployer)


# ---------------------------------------------------------------- ChainlinkPriceOracle


def test_chainlink_oracle_reports_its_configuration(protocol: Deployed, project: Any) -> None:
    sequencer = project.MockAggregatorV3.deploy(0, sender=protocol.deployer)
    feed, adapter = chainlink(
        project,
        protocol,
        8,
        minAnswer=5,
        maxAnswer=7,
        sequencerUptimeFeed=sequencer.address,
        gracePeriod=GRACE,
    )
    assert adapter.feed() == feed.address
    assert adapter.heartbeat() == FEED_STALENESS
    # The feed's heartbeat is the reading's freshness limit, which the BME core applies.
    assert adapter.maxAge() == FEED_STALENESS
    assert adapter.confidenceBps() == FEED_BAND_BPS
    assert (adapter.minAnswer(), adapter.maxAnswer()) == (5, 7)
    assert adapter.sequencerUptimeFeed() == sequencer.address
    assert adapter.gracePeriod() == GRACE


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


@pytest.mark.parametrize(
    "bad",
    [
        "zero feed",
        "zero heartbeat",
        "band of 100 %",
        "zero minimum",
        "negative minimum",
        "maximum below minimum",
    ],
)
def test_chainlink_oracle_invalid_config_reverts(protocol: Deployed, project: Any, bad: str) -> None:
    feed = project.MockAggregatorV3.deploy(8, sender=protocol.deployer)
    overrides = {
        "zero feed": {"feed": ZERO_ADDRESS},
        "zero heartbeat": {"heartbeat": 0},
        "band of 100 %": {"confidenceBps": 10_000},
        "zero minimum": {"minAnswer": 0},
        "negative minimum": {"minAnswer": -1},
        "maximum below minimum": {"minAnswer": 10, "maxAnswer": 9},
    }[bad]
    with reverts(project.ChainlinkPriceOracle.ChainlinkPriceOracleInvalidConfig):
        project.ChainlinkPriceOracle.deploy(chainlink_config(feed, **overrides), sender=protocol.deployer)


def test_chainlink_oracle_band_just_below_100_percent_is_accepted(protocol: Deployed, project: Any) -> None:
    feed = project.MockAggregatorV3.deploy(8, sender=protocol.deployer)
    adapter = project.ChainlinkPriceOracle.deploy(
        chainlink_config(feed, confidenceBps=9_999), sender=protocol.deployer
    )
    assert adapter.confidenceBps() == 9_999


@pytest.mark.parametrize("answer", [49_999_999, 500_000_001])
def test_chainlink_oracle_answer_outside_its_bounds_reverts(
    protocol: Deployed, project: Any, chain: Any, answer: int
) -> None:
    # Bounds of $0.50 to $5.00 at 8 decimals: an aggregator clamped at its own limit, or a broken feed,
    # answers outside them; the adapter gives no price rather than a wrong one.
    feed, adapter = chainlink(project, protocol, 8, minAnswer=50_000_000, maxAnswer=500_000_000)
    feed.setAnswer(answer, head_time(chain), sender=protocol.deployer)
    call_reverts(
        adapter.ChainlinkPriceOracleOutOfBounds,
        adapter.latestPrice,
        answer=answer,
        minAnswer=50_000_000,
        maxAnswer=500_000_000,
    )


@pytest.mark.parametrize("answer", [50_000_000, 500_000_000])
def test_chainlink_oracle_answer_at_its_bounds_is_accepted(
    protocol: Deployed, project: Any, chain: Any, answer: int
) -> None:
    feed, adapter = chainlink(project, protocol, 8, minAnswer=50_000_000, maxAnswer=500_000_000)
    ts = head_time(chain)
    feed.setAnswer(answer, ts, sender=protocol.deployer)
    assert adapter.latestPrice()[:2] == (answer * 10**10, ts)


def test_chainlink_oracle_incomplete_round_reverts(protocol: Deployed, project: Any, chain: Any) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    ts = head_time(chain)
    # Round 7's answer was carried over from round 6: the round has not been answered yet.
    feed.setRound(7, 10**8, ts, ts, 6, sender=protocol.deployer)
    call_reverts(
        adapter.ChainlinkPriceOracleIncompleteRound, adapter.latestPrice, roundId=7, answeredInRound=6
    )
    feed.setRound(7, 10**8, ts, ts, 7, sender=protocol.deployer)
    assert adapter.latestPrice()[0] == CMP


def sequenced(project: Any, p: Deployed) -> tuple[Any, Any, Any]:
    """A feed, an L2 sequencer-uptime feed and an adapter that checks both (grace period 3600 s)."""
    sequencer = project.MockAggregatorV3.deploy(0, sender=p.deployer)
    feed, adapter = chainlink(project, p, 8, sequencerUptimeFeed=sequencer.address, gracePeriod=GRACE)
    return feed, sequencer, adapter


def test_chainlink_oracle_refuses_while_the_sequencer_is_down(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    feed, sequencer, adapter = sequenced(project, protocol)
    now = head_time(chain)
    feed.setAnswer(10**8, now, sender=protocol.deployer)
    sequencer.setRound(1, 1, now - 2 * GRACE, now - 2 * GRACE, 1, sender=protocol.deployer)  # 1: down
    call_reverts(adapter.ChainlinkPriceOracleSequencerDown, adapter.latestPrice)
    # An uptime feed without a valid round (startedAt 0: Arbitrum's before its first update) is not trusted.
    sequencer.setRound(1, 0, 0, 0, 1, sender=protocol.deployer)
    call_reverts(adapter.ChainlinkPriceOracleSequencerDown, adapter.latestPrice)


def test_chainlink_oracle_refuses_within_the_grace_period_after_the_sequencer_is_back(
    protocol: Deployed, project: Any, chain: Any
) -> None:
    feed, sequencer, adapter = sequenced(project, protocol)
    now = head_time(chain)
    feed.setAnswer(10**8, now, sender=protocol.deployer)
    back = now - GRACE + 60  # up for less than the grace period: still refused
    sequencer.setRound(2, 0, back, back, 2, sender=protocol.deployer)
    call_reverts(
        adapter.ChainlinkPriceOracleGracePeriod, adapter.latestPrice, upSince=back, gracePeriod=GRACE
    )
    # Up for longer than the grace period: the price is given.
    sequencer.setRound(2, 0, now - GRACE - 60, now - GRACE - 60, 2, sender=protocol.deployer)
    assert adapter.latestPrice()[0] == CMP


def test_bme_burn_while_the_sequencer_is_down_reverts_with_the_adapter_reason(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, sequencer, adapter = sequenced(project, protocol)
    gov.execute(protocol.bme.setOracle, adapter)
    now = head_time(chain) + 1
    next_tx_at(chain, now)
    sequencer.setAnswer(1, now, sender=protocol.deployer)  # the sequencer went down now
    feed.setAnswer(10**8, now, sender=protocol.deployer)
    with reverts(adapter.ChainlinkPriceOracleSequencerDown):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    protocol.bme.syncStatus(sender=protocol.users[0])
    assert protocol.bme.status() == HALT_ORACLE
    assert protocol.credit.totalSupply() == 0


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
    empty = manual_oracle(project, protocol)
    gov.execute(protocol.bme.setOracle, empty)
    with reverts(protocol.bme.BmeOracleNonPositive):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


def test_bme_burn_with_reverting_oracle_reverts_with_the_oracle_reason(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    gov.execute(protocol.bme.setOracle, adapter)
    feed.setAnswer(-1, head_time(chain), sender=protocol.deployer)
    with reverts(adapter.ChainlinkPriceOracleNonPositive, answer=-1):
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


def test_bme_burn_judges_a_chainlink_answer_by_the_feed_heartbeat(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    feed, adapter = chainlink(project, protocol, 8)
    gov.execute(protocol.bme.setOracle, adapter)
    # 100 s old: refused under a fixed 30 s rule, yet normal for a feed with a 3600 s heartbeat. Accepted.
    updated_at = head_time(chain) - 100
    feed.setAnswer(10**8, updated_at, sender=protocol.deployer)
    protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    assert protocol.credit.balanceOf(protocol.users[0]) > 0
    # Older than the heartbeat: refused, with the adapter's reason.
    updated_at = head_time(chain) - FEED_STALENESS - 1
    feed.setAnswer(10**8, updated_at, sender=protocol.deployer)
    with reverts(adapter.ChainlinkPriceOracleStale, updatedAt=updated_at, maxStaleness=FEED_STALENESS):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


def test_bme_applies_the_manual_oracle_max_age(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    slow = manual_oracle(project, protocol, max_age=120)
    gov.execute(protocol.bme.setOracle, slow)
    t0 = head_time(chain) + 5
    next_tx_at(chain, t0)
    slow.pushPrice(CMP, 0, t0, sender=protocol.deployer)
    next_tx_at(chain, t0 + 120)
    protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])
    next_tx_at(chain, t0 + 121)
    with reverts(protocol.bme.BmeOracleStale, updatedAt=t0, maxAge=120):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[0])


@pytest.mark.parametrize("kind", ["account", "token without maxAge"])
def test_set_oracle_to_something_without_a_freshness_limit_reverts(
    protocol: Deployed, gov: Governance, kind: str
) -> None:
    target = protocol.users[3].address if kind == "account" else protocol.token.address
    with reverts(protocol.bme.BmeInvalidParameters):
        gov.execute(protocol.bme.setOracle, target)
    assert protocol.bme.oracle() == protocol.oracle.address


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
    empty = manual_oracle(project, protocol)
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

"""The BME core: burns for credits, redemptions of earnings, the collateral status machine, the mint limit,
pause and governance."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak

from tests.conftest import CMP, CRD, GENESIS, MAX_UINT, SUPPLY, Deployed
from tests.contracts.helpers import (
    HALT_CR,
    HEALTHY,
    WARNING,
    ZERO32,
    ZERO_ADDRESS,
    Governance,
    advance,
    earn,
    event_args,
    head_time,
    next_tx_at,
    normalised,
    price_at,
    push,
    reverts,
    spec_hash,
    terms,
    with_active_operators,
)

#: After 1000 CMP are burned at $1 (997.5 CRD outstanding), the price at which the collateral ratio is exactly
#: 1 bp: CR = 1000e18 * P / (997.5e6 * 1e26) bps, so P = CR * 0.9975e14.
CR_BP = 99_750_000_000_000

DEFAULTS = {
    "mintSpreadBps": 25,
    "settleSpreadBps": 0,
    "crWarnBps": 9500,
    "crHaltBps": 9000,
    "crHysteresisBps": 100,
    "oracleMaxConfidenceBps": 150,
    "confidenceMultiplier": 2,
    "mintWindow": 86_400,
    "minMintCredits": 10 * CRD,
}


@pytest.fixture(scope="module")
def protocol(protocol: Deployed) -> Deployed:
    """The shared deployment with its operators active (`with_active_operators`)."""
    return with_active_operators(protocol)


def params(**overrides: int) -> tuple[int, ...]:
    """The BmeParameters.Core tuple: the defaults with `overrides`."""
    return tuple({**DEFAULTS, **overrides}.values())


def deadline(chain: Any) -> int:
    return head_time(chain) + 3600


def status_changes(tx: Any, p: Deployed) -> list[dict[str, Any]]:
    return event_args(tx, p.bme.StatusChanged)


# ---------------------------------------------------------------- burns


def test_parameters_are_the_documented_defaults(protocol: Deployed) -> None:
    assert tuple(protocol.bme.parameters()) == params()
    assert protocol.bme.mintLimitPerWindow() == 10_000_000 * CMP
    assert protocol.bme.jobEscrow() == protocol.escrow.address
    assert protocol.bme.oracle() == protocol.oracle.address
    assert protocol.bme.status() == HEALTHY


@pytest.mark.parametrize(
    ("tokens", "price", "credits"),
    [
        (100 * CMP, CMP, 99_750_000),
        (100 * CMP, 5 * CMP // 2, 249_375_000),
        # 12.345678901234567891 CMP at $0.987654321, less 25 bps: 12.162779... CRD, rounded down.
        (12_345_678_901_234_567_891, 987_654_321_000_000_000, 12_162_779),
        # 37 CMP and 1 wei at $0.333333333333333333: 12.3024998... CRD, rounded down.
        (37 * CMP + 1, 333_333_333_333_333_333, 12_302_499),
    ],
)
def test_burn_gives_tokens_times_price_less_spread_rounded_down(
    protocol: Deployed, chain: Any, tokens: int, price: int, credits: int
) -> None:
    user = protocol.users[0]
    push(protocol, chain, price)
    assert protocol.bme.quoteBurn(tokens) == credits

    tx = protocol.bme.burn(tokens, 0, sender=user)

    assert event_args(tx, protocol.bme.CreditsMinted) == [
        normalised(payer=user, recipient=user, tokensBurned=tokens, credits=credits, price=price)
    ]
    assert protocol.credit.balanceOf(user) == credits
    assert protocol.token.balanceOf(user) == GENESIS - tokens
    assert protocol.token.totalSupply() == SUPPLY - tokens
    assert protocol.bme.remintCredits() == tokens
    assert protocol.bme.outstandingCredits() == credits


def test_burn_with_confidence_band_prices_two_bands_below(protocol: Deployed, chain: Any) -> None:
    user = protocol.users[0]
    # $2.00 with a band of $0.02 (100 bps, within the 150 bps accepted): burned at $2.00 - 2 * $0.02 = $1.96.
    push(protocol, chain, 2 * CMP, 2 * CMP // 100)
    tx = protocol.bme.burn(100 * CMP, 0, sender=user)
    [minted] = event_args(tx, protocol.bme.CreditsMinted)
    assert minted["price"] == 196 * CMP // 100
    assert minted["credits"] == 195_510_000  # 100 * 1.96 * 0.9975
    assert protocol.credit.balanceOf(user) == 195_510_000


def test_burn_below_minimum_mint_reverts(protocol: Deployed, fresh_price: int) -> None:
    user = protocol.users[0]
    # The fewest tokens that give the 10 CRD minimum at $1, rounded up: 10 / 0.9975 CMP.
    least = protocol.bme.quoteTokensForCredits(10 * CRD)
    assert least == 10_025_062_656_641_604_011
    with reverts(protocol.bme.BmeBelowMinimumMint, credits=9_999_999, minimum=10 * CRD):
        protocol.bme.burn(least - 1, 0, sender=user)
    protocol.bme.burn(least, 0, sender=user)
    assert protocol.credit.balanceOf(user) == 10 * CRD


def test_burn_below_callers_min_credits_reverts(protocol: Deployed, fresh_price: int) -> None:
    user = protocol.users[0]
    with reverts(protocol.bme.BmeSlippageExceeded, actual=99_750_000, minimum=99_750_001):
        protocol.bme.burn(100 * CMP, 99_750_001, sender=user)
    protocol.bme.burn(100 * CMP, 99_750_000, sender=user)
    assert protocol.credit.balanceOf(user) == 99_750_000


def test_burn_zero_reverts(protocol: Deployed, fresh_price: int) -> None:
    with reverts(protocol.bme.BmeZeroAmount):
        protocol.bme.burn(0, 0, sender=protocol.users[0])


def test_burn_without_allowance_reverts(protocol: Deployed, fresh_price: int, wallet: Any) -> None:
    protocol.token.transfer(wallet, 100 * CMP, sender=protocol.users[0])
    with reverts(
        protocol.token.ERC20InsufficientAllowance, spender=protocol.bme, allowance=0, needed=100 * CMP
    ):
        protocol.bme.burn(100 * CMP, 0, sender=wallet)
    assert protocol.bme.remintCredits() == 0
    assert protocol.bme.outstandingCredits() == 0


def test_burns_accumulate_remint_credits_and_outstanding_credits(protocol: Deployed, chain: Any) -> None:
    a, b = protocol.users[0], protocol.users[1]
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=a)
    protocol.bme.burn(250 * CMP, 0, sender=b)
    push(protocol, chain, 2 * CMP)
    protocol.bme.burn(40 * CMP, 0, sender=a)

    assert protocol.bme.remintCredits() == 390 * CMP
    # 99.75 + 249.375 + 79.8 CRD
    assert protocol.bme.outstandingCredits() == 428_925_000
    assert protocol.credit.totalSupply() == 428_925_000
    assert protocol.credit.balanceOf(a) == 179_550_000
    assert protocol.token.totalSupply() == SUPPLY - 390 * CMP


@pytest.mark.parametrize(
    ("price", "credits", "tokens"),
    [
        (CMP, 99_750_000, 100 * CMP),  # exact: no rounding
        (3 * CMP, 1, 334_168_755_222),  # 1e-6 CRD at $3 less 25 bps: 334168755221.3... wei, rounded up
    ],
)
def test_quote_tokens_for_credits_rounds_up(
    protocol: Deployed, chain: Any, price: int, credits: int, tokens: int
) -> None:
    push(protocol, chain, price)
    assert protocol.bme.quoteTokensForCredits(credits) == tokens
    assert protocol.bme.quoteBurn(tokens) >= credits
    assert protocol.bme.quoteBurn(tokens - 1) < credits


# ---------------------------------------------------------------- collateral ratio and status


def burn_1000_at_one_dollar(p: Deployed, chain: Any) -> None:
    """1000 CMP backing 997.5 CRD: a collateral ratio of 10025 bps at $1."""
    push(p, chain, CMP)
    p.bme.burn(1000 * CMP, 0, sender=p.users[0])
    assert p.bme.collateralRatioBps() == 10_025


def sync_at(p: Deployed, chain: Any, cr_bps: int) -> Any:
    """Pushes the price at which the CR is exactly `cr_bps` and records the status."""
    push(p, chain, cr_bps * CR_BP)
    assert p.bme.collateralRatioBps() == cr_bps
    return p.bme.syncStatus(sender=p.users[3])


def test_collateral_ratio_is_unbounded_with_nothing_outstanding(protocol: Deployed, fresh_price: int) -> None:
    assert protocol.bme.collateralRatioBps() == MAX_UINT


def test_price_crash_drives_status_to_warning_then_halt_cr(protocol: Deployed, chain: Any) -> None:
    burn_1000_at_one_dollar(protocol, chain)

    tx = sync_at(protocol, chain, 9499)
    assert status_changes(tx, protocol) == [normalised(previous=HEALTHY, current=WARNING, crBps=9499)]
    assert protocol.bme.status() == WARNING
    # Warning is a signal: burns go on.
    protocol.bme.burn(100 * CMP, 0, sender=protocol.users[1])

    # 1100 CMP now back 997.5 + 94.515643 CRD; at $0.85 the CR is 8562 bps, below the halt threshold.
    assert protocol.bme.outstandingCredits() == 1_092_015_643
    push(protocol, chain, 85 * CMP // 100)
    tx = protocol.bme.syncStatus(sender=protocol.users[3])
    assert status_changes(tx, protocol) == [normalised(previous=WARNING, current=HALT_CR, crBps=8562)]
    assert protocol.bme.status() == HALT_CR
    with reverts(protocol.bme.BmeHalted, status=HALT_CR):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[1])
    with reverts(protocol.bme.BmeHalted, status=HALT_CR):
        protocol.escrow.burnForJob(
            100 * CMP, 0, terms(spec_hash(1), deadline(chain)), sender=protocol.users[1]
        )


def test_burn_after_an_unrecorded_crash_below_halt_reverts(protocol: Deployed, chain: Any) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    # The recorded status is still Healthy; the burn computes the status itself before minting.
    push(protocol, chain, 8999 * CR_BP)
    with reverts(protocol.bme.BmeHalted, status=HALT_CR):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[1])
    assert protocol.bme.outstandingCredits() == 997_500_000


def test_halt_cr_is_left_only_at_halt_plus_hysteresis(protocol: Deployed, chain: Any) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    sync_at(protocol, chain, 8999)
    assert protocol.bme.status() == HALT_CR

    # Back above the halt threshold (9000) but below 9000 + 100: still halted.
    tx = sync_at(protocol, chain, 9099)
    assert status_changes(tx, protocol) == []
    assert protocol.bme.status() == HALT_CR
    with reverts(protocol.bme.BmeHalted, status=HALT_CR):
        protocol.bme.burn(100 * CMP, 0, sender=protocol.users[1])

    tx = sync_at(protocol, chain, 9100)
    assert status_changes(tx, protocol) == [normalised(previous=HALT_CR, current=WARNING, crBps=9100)]
    protocol.bme.burn(100 * CMP, 0, sender=protocol.users[1])
    # 100 CMP at $0.907725 less 25 bps: 90.5455687... CRD, rounded down.
    assert protocol.credit.balanceOf(protocol.users[1]) == 90_545_568


def test_warning_is_left_only_at_warn_plus_hysteresis(protocol: Deployed, chain: Any) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    sync_at(protocol, chain, 9499)
    assert protocol.bme.status() == WARNING

    for cr in (9500, 9599):
        tx = sync_at(protocol, chain, cr)
        assert status_changes(tx, protocol) == []
        assert protocol.bme.status() == WARNING

    tx = sync_at(protocol, chain, 9600)
    assert status_changes(tx, protocol) == [normalised(previous=WARNING, current=HEALTHY, crBps=9600)]


def test_healthy_enters_warning_only_below_the_threshold(protocol: Deployed, chain: Any) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    tx = sync_at(protocol, chain, 9500)
    assert status_changes(tx, protocol) == []
    assert protocol.bme.status() == HEALTHY
    sync_at(protocol, chain, 9499)
    assert protocol.bme.status() == WARNING


def test_halt_cr_recovering_past_both_margins_goes_straight_to_healthy(
    protocol: Deployed, chain: Any
) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    sync_at(protocol, chain, 8000)
    tx = sync_at(protocol, chain, 9600)
    assert status_changes(tx, protocol) == [normalised(previous=HALT_CR, current=HEALTHY, crBps=9600)]


def test_burn_records_the_status_it_computes(protocol: Deployed, chain: Any) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    price = 9499 * CR_BP  # $0.94752525
    push(protocol, chain, price)
    tx = protocol.bme.burn(100 * CMP, 0, sender=protocol.users[1])
    # After the burn: 1100 CMP backing 997.5 + 94.515643 CRD, a CR of 9544 bps: Warning.
    assert protocol.bme.outstandingCredits() == 997_500_000 + 94_515_643
    assert status_changes(tx, protocol) == [normalised(previous=HEALTHY, current=WARNING, crBps=9544)]


def test_seed_counts_as_backing_in_the_collateral_ratio(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    burn_1000_at_one_dollar(protocol, chain)
    tx = gov.execute(protocol.bme.setSeed, 500 * CMP)
    assert event_args(tx, protocol.bme.SeedUpdated) == [normalised(seedTokens=500 * CMP)]
    assert protocol.bme.seedTokens() == 500 * CMP
    push(protocol, chain, CMP)
    assert protocol.bme.collateralRatioBps() == 15_037  # 1500 CMP * $1 / 997.5 CRD
    push(protocol, chain, CMP // 2)
    assert protocol.bme.collateralRatioBps() == 7_518


# ---------------------------------------------------------------- redemptions


def test_redeem_reissues_against_remint_credits_first_then_issues_new(protocol: Deployed, chain: Any) -> None:
    bme, operator = protocol.bme, protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 99_750_000, 1)
    assert protocol.escrow.earningsOf(operator) == 99_750_000
    assert bme.remintCredits() == 100 * CMP

    # At $0.50 each credit unit is worth twice the tokens it was bought with.
    push(protocol, chain, CMP // 2)
    assert bme.quoteRedeem(49_875_000) == 99_750_000_000_000_000_000
    tx = bme.redeem(49_875_000, 0, sender=operator)
    assert event_args(tx, bme.Redeemed) == [
        normalised(
            operator=operator,
            credits=49_875_000,
            tokensMinted=99_750_000_000_000_000_000,
            reissued=99_750_000_000_000_000_000,
            newlyIssued=0,
            price=CMP // 2,
        )
    ]
    assert event_args(tx, protocol.escrow.EarningsRedeemed) == [
        normalised(operator=operator, credits=49_875_000)
    ]
    assert bme.remintCredits() == 250_000_000_000_000_000

    # The rest: 99.75 CMP again, of which only the 0.25 CMP of remint credits left is re-issue.
    tx = bme.redeem(49_875_000, 0, sender=operator)
    assert event_args(tx, bme.Redeemed) == [
        normalised(
            operator=operator,
            credits=49_875_000,
            tokensMinted=99_750_000_000_000_000_000,
            reissued=250_000_000_000_000_000,
            newlyIssued=99_500_000_000_000_000_000,
            price=CMP // 2,
        )
    ]
    assert bme.remintCredits() == 0
    assert bme.totalReissued() == 100 * CMP
    assert bme.totalNewIssuance() == 99_500_000_000_000_000_000
    assert bme.outstandingCredits() == 0
    assert protocol.escrow.earningsOf(operator) == 0
    assert protocol.token.balanceOf(operator) == 199_500_000_000_000_000_000
    # Demand at a falling price issues supply: 100 CMP burned, 199.5 CMP minted.
    assert protocol.token.totalSupply() == SUPPLY - 100 * CMP + 199_500_000_000_000_000_000


def test_redeem_at_a_higher_price_only_reissues(protocol: Deployed, chain: Any) -> None:
    bme, operator = protocol.bme, protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 99_750_000, 1)
    push(protocol, chain, 2 * CMP)

    tx = bme.redeem(99_750_000, 0, sender=operator)

    [redeemed] = event_args(tx, bme.Redeemed)
    assert (redeemed["tokensMinted"], redeemed["reissued"], redeemed["newlyIssued"]) == (
        49_875_000_000_000_000_000,
        49_875_000_000_000_000_000,
        0,
    )
    assert bme.remintCredits() == 50_125_000_000_000_000_000
    assert bme.totalNewIssuance() == 0
    # Demand at a rising price burns supply: 100 CMP burned, 49.875 CMP minted.
    assert protocol.token.totalSupply() == SUPPLY - 50_125_000_000_000_000_000


def test_redeem_with_confidence_band_prices_two_bands_above(protocol: Deployed, chain: Any) -> None:
    bme, operator = protocol.bme, protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 10 * CRD, 1)
    push(protocol, chain, CMP, CMP // 100)  # $1.00 with a band of $0.01: redeemed at $1.02
    tx = bme.redeem(10 * CRD, 0, sender=operator)
    [redeemed] = event_args(tx, bme.Redeemed)
    assert redeemed["price"] == 102 * CMP // 100
    assert redeemed["tokensMinted"] == 9_803_921_568_627_450_980  # 10 / 1.02, rounded down
    assert protocol.token.balanceOf(operator) == 9_803_921_568_627_450_980


def test_redeem_more_than_earnings_reverts(protocol: Deployed, chain: Any) -> None:
    operator = protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 99_750_000, 1)
    with reverts(
        protocol.bme.JobEscrowInsufficientEarnings,
        operator=operator,
        earnings=99_750_000,
        requested=99_750_001,
    ):
        protocol.bme.redeem(99_750_001, 0, sender=operator)
    assert protocol.escrow.earningsOf(operator) == 99_750_000


def test_redeem_without_earnings_reverts(protocol: Deployed, fresh_price: int) -> None:
    user = protocol.users[0]
    with reverts(protocol.bme.JobEscrowInsufficientEarnings, operator=user, earnings=0, requested=CRD):
        protocol.bme.redeem(CRD, 0, sender=user)
    assert protocol.token.balanceOf(user) == GENESIS


def test_redeem_below_callers_min_tokens_reverts(protocol: Deployed, chain: Any) -> None:
    operator = protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 10 * CRD, 1)
    with reverts(protocol.bme.BmeSlippageExceeded, actual=10 * CMP, minimum=10 * CMP + 1):
        protocol.bme.redeem(10 * CRD, 10 * CMP + 1, sender=operator)
    protocol.bme.redeem(10 * CRD, 10 * CMP, sender=operator)
    assert protocol.token.balanceOf(operator) == 10 * CMP


def test_redeem_zero_reverts(protocol: Deployed, fresh_price: int) -> None:
    with reverts(protocol.bme.BmeZeroAmount):
        protocol.bme.redeem(0, 0, sender=protocol.operators[0])


def test_redeem_of_credits_worth_no_token_unit_reverts(protocol: Deployed, chain: Any) -> None:
    operator = protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 10 * CRD, 1)
    # At $2e12 per CMP, one credit unit ($1e-6) buys 0.5 wei of CMP: rounded down to nothing.
    push(protocol, chain, 2 * 10**12 * CMP)
    with reverts(protocol.bme.BmeZeroAmount):
        protocol.bme.redeem(1, 0, sender=operator)


def test_redeem_is_allowed_while_halt_cr(protocol: Deployed, chain: Any) -> None:
    operator = protocol.operators[0]
    push(protocol, chain, CMP)
    # 500 CMP backing 498.75 CRD: the same ratio as 1000 CMP backing 997.5 CRD.
    earn(protocol, chain, operator, protocol.users[0], 500 * CMP, 498_750_000, 1)
    push(protocol, chain, 8000 * CR_BP)
    protocol.bme.syncStatus(sender=operator)
    assert protocol.bme.status() == HALT_CR
    # Halts stop the minting of credits; operators are still paid for work done.
    protocol.bme.redeem(100 * CRD, 0, sender=operator)
    assert protocol.escrow.earningsOf(operator) == 398_750_000


# ---------------------------------------------------------------- mint limit


def test_redeem_beyond_the_mint_limit_reverts(protocol: Deployed, chain: Any, gov: Governance) -> None:
    bme, operator = protocol.bme, protocol.operators[0]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 99_750_000, 1)
    tx = gov.execute(bme.setMintLimit, 60 * CMP)
    assert event_args(tx, bme.MintLimitUpdated) == [normalised(mintLimitPerWindow=60 * CMP)]
    assert bme.mintLimitPerWindow() == 60 * CMP
    push(protocol, chain, CMP)

    with reverts(bme.BmeRateLimited, requested=99_750_000_000_000_000_000, available=60 * CMP):
        bme.redeem(99_750_000, 0, sender=operator)
    bme.redeem(50 * CRD, 0, sender=operator)
    assert bme.mintAvailable() == 10 * CMP
    with reverts(bme.BmeRateLimited, requested=20 * CMP, available=10 * CMP):
        bme.redeem(20 * CRD, 0, sender=operator)
    bme.redeem(10 * CRD, 0, sender=operator)
    assert bme.mintAvailable() == 0


def test_mint_limit_frees_up_as_the_window_rolls(protocol: Deployed, chain: Any, gov: Governance) -> None:
    bme, operator, window = protocol.bme, protocol.operators[0], 86_400
    bucket = window // 4  # the window counts the current bucket and the four before it, in full
    start = protocol.window_start
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 99_750_000, 1)
    gov.execute(bme.setMintLimit, 60 * CMP)
    push(protocol, chain, CMP)
    assert head_time(chain) < start + bucket  # still in the first bucket
    bme.redeem(50 * CRD, 0, sender=operator)

    # A whole window later the first bucket is the oldest one counted: only 10 CMP are free.
    t = start + window
    price_at(protocol, chain, t - 1, CMP)
    next_tx_at(chain, t)
    with reverts(bme.BmeRateLimited, requested=11 * CMP, available=10 * CMP):
        bme.redeem(11 * CRD, 0, sender=operator)
    bme.redeem(10 * CRD, 0, sender=operator)

    # One bucket later the first bucket no longer counts; the 10 CMP just minted still do.
    advance(chain, bucket)
    assert bme.mintAvailable() == 50 * CMP
    push(protocol, chain, CMP)
    bme.redeem(39_750_000, 0, sender=operator)
    assert bme.mintAvailable() == 50 * CMP - 39_750_000_000_000_000_000
    assert protocol.escrow.earningsOf(operator) == 0


# ---------------------------------------------------------------- pause


def test_pause_by_guardian_stops_burns_and_redeems(protocol: Deployed, chain: Any) -> None:
    bme, operator, user = protocol.bme, protocol.operators[0], protocol.users[1]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 10 * CRD, 1)

    tx = bme.pause(sender=protocol.deployer)
    assert event_args(tx, bme.Paused) == [normalised(account=protocol.deployer)]
    assert bme.paused()
    with reverts(bme.EnforcedPause):
        bme.burn(100 * CMP, 0, sender=user)
    with reverts(bme.EnforcedPause):
        bme.redeem(10 * CRD, 0, sender=operator)
    with reverts(bme.EnforcedPause):
        protocol.escrow.burnForJob(100 * CMP, 0, terms(spec_hash(2), deadline(chain)), sender=user)
    # The status can still be recorded.
    bme.syncStatus(sender=user)


def test_pause_by_non_guardian_reverts(protocol: Deployed) -> None:
    user = protocol.users[0]
    with reverts(
        protocol.bme.AccessControlUnauthorizedAccount, account=user, neededRole=protocol.bme.PAUSER_ROLE()
    ):
        protocol.bme.pause(sender=user)
    assert not protocol.bme.paused()


def test_unpause_only_by_governance(protocol: Deployed, chain: Any, gov: Governance) -> None:
    bme, guardian = protocol.bme, protocol.deployer
    bme.pause(sender=guardian)
    with reverts(bme.AccessControlUnauthorizedAccount, account=guardian, neededRole=bme.GOVERNOR_ROLE()):
        bme.unpause(sender=guardian)

    tx = gov.execute(bme.unpause)

    assert event_args(tx, bme.Unpaused) == [normalised(account=protocol.timelock)]
    assert not bme.paused()
    push(protocol, chain, CMP)
    bme.burn(100 * CMP, 0, sender=protocol.users[0])
    assert protocol.credit.balanceOf(protocol.users[0]) == 99_750_000


# ---------------------------------------------------------------- governance


GOVERNANCE_CALLS = {
    "setParameters": lambda p: (params(),),
    "setOracle": lambda p: (p.users[3].address,),
    "setSeed": lambda p: (CMP,),
    "setMintLimit": lambda p: (CMP,),
    "setEmissionLimit": lambda p: (CMP,),
    "unpause": lambda p: (),
}


@pytest.mark.parametrize("caller", ["user", "guardian"])
@pytest.mark.parametrize("setter", GOVERNANCE_CALLS)
def test_governance_setter_by_non_governor_reverts(protocol: Deployed, setter: str, caller: str) -> None:
    bme = protocol.bme
    account = protocol.users[0] if caller == "user" else protocol.deployer
    if setter == "unpause":
        bme.pause(sender=protocol.deployer)
    with reverts(bme.AccessControlUnauthorizedAccount, account=account, neededRole=bme.GOVERNOR_ROLE()):
        getattr(bme, setter)(*GOVERNANCE_CALLS[setter](protocol), sender=account)


def test_governor_role_is_held_by_the_timelock_only(protocol: Deployed) -> None:
    bme, governor = protocol.bme, protocol.bme.GOVERNOR_ROLE()
    assert governor == keccak(text="GOVERNOR_ROLE")
    assert bme.hasRole(governor, protocol.timelock)
    assert bme.hasRole(bme.DEFAULT_ADMIN_ROLE(), protocol.timelock)
    for account in (protocol.deployer, *protocol.users):
        assert not bme.hasRole(governor, account)
        assert not bme.hasRole(bme.DEFAULT_ADMIN_ROLE(), account)
    assert bme.hasRole(bme.PAUSER_ROLE(), protocol.deployer)


def test_set_parameters_through_timelock_applies_new_spreads(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    bme, operator, user = protocol.bme, protocol.operators[0], protocol.users[1]
    push(protocol, chain, CMP)
    earn(protocol, chain, operator, protocol.users[0], 100 * CMP, 10 * CRD, 1)
    new = params(mintSpreadBps=100, settleSpreadBps=50, minMintCredits=CRD)

    tx = gov.execute(bme.setParameters, new)

    assert len(event_args(tx, bme.ParametersUpdated)) == 1
    assert tuple(bme.parameters()) == new
    push(protocol, chain, CMP)
    bme.burn(100 * CMP, 0, sender=user)
    assert protocol.credit.balanceOf(user) == 99 * CRD  # 1 % spread
    bme.redeem(10 * CRD, 0, sender=operator)
    assert protocol.token.balanceOf(operator) == 9_950_000_000_000_000_000  # 0.5 % spread


def test_set_parameters_at_the_edge_of_validity_is_accepted(protocol: Deployed, gov: Governance) -> None:
    edge = params(
        mintSpreadBps=4999,
        settleSpreadBps=4999,
        crWarnBps=9001,
        crHysteresisBps=2000,
        oracleMaxConfidenceBps=10_000,
        confidenceMultiplier=10,
        mintWindow=1,
        minMintCredits=1,
    )
    gov.execute(protocol.bme.setParameters, edge)
    assert tuple(protocol.bme.parameters()) == edge


@pytest.mark.parametrize(
    "invalid",
    [
        {"mintSpreadBps": 5000},
        {"settleSpreadBps": 5000},
        {"crHaltBps": 9500},
        {"crHaltBps": 9600},
        {"crHysteresisBps": 2001},
        {"oracleMaxConfidenceBps": 10_001},
        {"confidenceMultiplier": 11},
        {"mintWindow": 0},
        {"minMintCredits": 0},
    ],
    ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()),
)
def test_set_invalid_parameters_reverts(protocol: Deployed, gov: Governance, invalid: dict[str, int]) -> None:
    with reverts(protocol.bme.BmeInvalidParameters):
        gov.execute(protocol.bme.setParameters, params(**invalid))
    assert tuple(protocol.bme.parameters()) == params()


def test_set_zero_address_reverts(protocol: Deployed, gov: Governance) -> None:
    with reverts(protocol.bme.BmeInvalidParameters):
        gov.execute(protocol.bme.setOracle, ZERO_ADDRESS)
    assert protocol.bme.oracle() == protocol.oracle.address
    assert protocol.bme.jobEscrow() == protocol.escrow.address


def test_set_oracle_through_timelock_switches_the_price_source(
    protocol: Deployed, project: Any, chain: Any, gov: Governance
) -> None:
    other = project.ManualPriceOracle.deploy(
        protocol.timelock, protocol.deployer, 30, 1000, 0, sender=protocol.deployer
    )
    tx = gov.execute(protocol.bme.setOracle, other)
    assert event_args(tx, protocol.bme.OracleUpdated) == [
        normalised(previousOracle=protocol.oracle, newOracle=other)
    ]
    assert protocol.bme.oracle() == other.address
    ts = advance(chain, 1)
    other.pushPrice(4 * CMP, 0, ts, sender=protocol.deployer)
    assert protocol.bme.quoteBurn(100 * CMP) == 399 * CRD


@pytest.mark.parametrize("caller", ["user", "guardian"])
def test_burn_for_escrow_by_anyone_but_the_escrow_reverts(
    protocol: Deployed, fresh_price: int, caller: str
) -> None:
    account = protocol.users[0] if caller == "user" else protocol.deployer
    with reverts(protocol.bme.BmeNotJobEscrow, caller=account):
        protocol.bme.burnForEscrow(protocol.users[0], 100 * CMP, 0, sender=account)
    assert protocol.token.balanceOf(protocol.users[0]) == GENESIS


def test_timelock_execute_before_the_delay_reverts(protocol: Deployed, chain: Any, gov: Governance) -> None:
    timelock = protocol.timelock
    target, data, salt = gov.schedule(protocol.bme.setSeed, CMP)
    operation_id = timelock.hashOperation(target, 0, data, ZERO32, salt)
    scheduled_at = head_time(chain)
    assert timelock.getTimestamp(operation_id) == scheduled_at + 3600
    ready = (1 << 2).to_bytes(32, "big")  # OperationState.Ready

    next_tx_at(chain, scheduled_at + 3599)
    with reverts(timelock.TimelockUnexpectedOperationState, operationId=operation_id, expectedStates=ready):
        gov.execute_scheduled((target, data, salt))
    assert protocol.bme.seedTokens() == 0

    next_tx_at(chain, scheduled_at + 3600)
    gov.execute_scheduled((target, data, salt))
    assert protocol.bme.seedTokens() == CMP
    assert timelock.isOperationDone(operation_id)


def test_timelock_schedule_by_non_proposer_reverts(protocol: Deployed) -> None:
    timelock, user = protocol.timelock, protocol.users[0]
    data = bytes(protocol.bme.setSeed.encode_input(CMP))
    with reverts(
        timelock.AccessControlUnauthorizedAccount, account=user, neededRole=timelock.PROPOSER_ROLE()
    ):
        timelock.schedule(protocol.bme, 0, data, ZERO32, ZERO32, 3600, sender=user)


def test_timelock_schedule_below_the_min_delay_reverts(protocol: Deployed) -> None:
    timelock = protocol.timelock
    data = bytes(protocol.bme.setSeed.encode_input(CMP))
    with reverts(timelock.TimelockInsufficientDelay, delay=3599, minDelay=3600):
        timelock.schedule(protocol.bme, 0, data, ZERO32, ZERO32, 3599, sender=protocol.governor_proposer)

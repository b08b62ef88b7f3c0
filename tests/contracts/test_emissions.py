"""The emission schedule and reward claims: the deployed schedule and its hard cap, claims pro-rata to the
stake kept rewardable through each epoch, minted at claim through the BME core's emission window (apart from
redemptions') after the challenge window, the errors of early, repeated and empty claims, and invariant 7
(emission never exceeds the cap; an epoch's claims never exceed its emission, and equal it to rounding once
all have claimed).

The attacks: an operator that pays for its own jobs and answers them (settled by the relayer) gets exactly
its stake share, as an honest staker does; a slash forfeits the unclaimed rewards of the slashed epochs; a
claim in the challenge window is refused; joining during an epoch earns nothing for it; a large claim fills
the emission window and leaves redemptions' room alone."""

from __future__ import annotations

from typing import Any

import pytest

from bme.chain.deploy import role
from bme.economics.emission import DEFAULT_CLAIM_DELAY_EPOCHS, DEFAULT_HARD_CAP, Schedule, Segment
from tests.conftest import CMP, CRD, Deployed
from tests.contracts.helpers import (
    Governance,
    call_reverts,
    earn,
    event_args,
    head_time,
    normalised,
    output_tokens_for,
    push,
    result_hash,
    reverts,
    settlement,
    spec_hash,
    terms,
)

EPOCH_EMISSION = 2_000_000 * CMP  # the default schedule's first segment
STAKE = 1_000 * CMP
EVIDENCE = b"\x07" * 32
DELAY = DEFAULT_CLAIM_DELAY_EPOCHS


def at_epoch(p: Deployed, chain: Any, epoch: int, offset: int = 0) -> None:
    """Mines a block `offset` seconds into `epoch`, then pushes a fresh $1.00 price."""
    genesis, length = int(p.escrow.epochGenesis()), int(p.escrow.epochLength())
    target = genesis + epoch * length + offset
    if target > int(chain.blocks.head.timestamp):
        chain.mine(timestamp=target)
    push(p, chain, CMP)


def operator_with(p: Deployed, accounts: Any, stake: int, extra: int = 100 * CMP) -> Any:
    """A fresh account holding `stake` plus `extra` CMP, approved for the registry and the BME core."""
    a = accounts.generate_test_account()
    p.deployer.transfer(a, 10**18)
    p.token.transfer(a, stake + extra, sender=p.users[0])
    p.token.approve(p.registry.address, 2**256 - 1, sender=a)
    p.token.approve(p.bme.address, 2**256 - 1, sender=a)
    return a


def staked(p: Deployed, accounts: Any, stakes: list[int]) -> list[Any]:
    """Fresh operators registered now with `stakes`, each holding 100 CMP besides its stake."""
    out = []
    for stake in stakes:
        a = operator_with(p, accounts, stake)
        p.registry.register(stake, "http://node/v1", [1], sender=a)
        out.append(a)
    return out


@pytest.fixture
def ops(protocol: Deployed, accounts: Any) -> list[Any]:
    """Three fresh operators registered in the current epoch with 1,000 CMP each: rewardable from the next."""
    return staked(protocol, accounts, [STAKE] * 3)


def claimable(epoch: int) -> int:
    """The first epoch in which `epoch`'s rewards may be claimed: after the challenge window."""
    return epoch + DELAY + 1


def test_the_deployed_schedule_is_the_default_and_sizes_the_mint_limit(protocol: Deployed) -> None:
    e = protocol.emissions
    assert [tuple(s) for s in e.segments()] == [
        (365, EPOCH_EMISSION, 0, 0),
        (0, EPOCH_EMISSION // 2, 5000, 730),
    ]
    assert e.hardCap() == DEFAULT_HARD_CAP == 2_200_000_000 * CMP
    assert e.scheduleBound() == 2_190_000_000 * CMP
    assert e.maxEpochEmission() == EPOCH_EMISSION
    expected = {
        0: EPOCH_EMISSION,
        364: EPOCH_EMISSION,
        365: 10**6 * CMP,
        1094: 10**6 * CMP,
        1095: 5 * 10**5 * CMP,
    }
    assert {k: e.epochEmission(k) for k in expected} == expected
    # Helium: 5x the epoch emission, for redemptions and for emissions, each in its own window.
    assert protocol.bme.mintLimitPerWindow() == protocol.bme.emissionLimitPerWindow() == 5 * EPOCH_EMISSION
    assert protocol.bme.hasRole(role("EMITTER_ROLE"), e.address)
    assert e.currentEpoch() == protocol.escrow.currentEpoch()
    assert e.claimDelayEpochs() == DELAY == 2


@pytest.mark.parametrize(
    ("segments", "cap", "delay", "error", "args"),
    [
        ([(10, 100, 0, 0)], 999, 2, "EmissionScheduleExceedsCap", {"bound": 1000, "cap": 999}),
        ([(0, 100, 0, 0)], 10**30, 2, "EmissionScheduleExceedsCap", {"bound": 2**256 - 1}),
        ([(0, 100, 2500, 4)], 1599, 2, "EmissionScheduleExceedsCap", {"bound": 1600}),
        ([(0, 100, 10_000, 4)], 10**30, 2, "EmissionScheduleInvalidSegment", {"index": 0}),
        ([(5, 1, 0, 0), (0, 100, 100, 0)], 10**30, 2, "EmissionScheduleInvalidSegment", {"index": 1}),
        ([(0, 1, 100, 1), (5, 1, 0, 0)], 10**30, 2, "EmissionScheduleInvalidSegment", {"index": 0}),
        ([], 10**30, 2, "EmissionScheduleInvalidSegment", {"index": 0}),
        ([(1, 1, 0, 0)] * 5, 10**30, 2, "EmissionScheduleInvalidSegment", {"index": 5}),
        ([(1, 1, 0, 0)], 10**30, 366, "EmissionScheduleInvalidClaimDelay", {"claimDelayEpochs": 366}),
    ],
)
def test_constructor_refuses_malformed_or_uncapped_schedules(
    protocol: Deployed,
    project: Any,
    segments: list[tuple[int, ...]],
    cap: int,
    delay: int,
    error: str,
    args: dict[str, Any],
) -> None:
    p = protocol
    with reverts(getattr(project.EmissionSchedule, error), **args):
        project.EmissionSchedule.deploy(
            p.escrow, p.registry, p.bme, p.token, cap, segments, delay, sender=p.deployer
        )


def test_a_decaying_schedule_matches_the_model_epoch_by_epoch(protocol: Deployed, project: Any) -> None:
    p = protocol
    segments = (Segment(3, 7 * CMP + 1), Segment(5, 3 * CMP, 1_234, 2), Segment(0, CMP + 3, 999, 1))
    model = Schedule(segments, 10**30)
    e = project.EmissionSchedule.deploy(
        p.escrow, p.registry, p.bme, p.token, 10**30, [s.as_tuple() for s in segments], 2, sender=p.deployer
    )
    assert e.scheduleBound() == model.bound
    assert [tuple(s) for s in e.segments()] == [s.as_tuple() for s in segments]
    for epoch in [*range(12), 50, 1000, 2**20, 2**40]:
        assert e.epochEmission(epoch) == model.emission_at(epoch), epoch
    assert e.epochEmission(4) == 3 * CMP and e.epochEmission(5) == 3 * CMP * 8766 // 10_000


def test_claim_pays_each_operator_its_stake_share_minted_at_claim(
    protocol: Deployed, chain: Any, accounts: Any
) -> None:
    p = protocol
    a, b, c = staked(p, accounts, [STAKE, 2 * STAKE, 5 * STAKE])  # 8,000 CMP in all
    e = int(p.escrow.currentEpoch()) + 1  # rewardable from the next epoch
    assert (p.registry.totalRewardStakeAt(e - 1), p.registry.totalRewardStakeAt(e)) == (0, 8 * STAKE)
    at_epoch(p, chain, claimable(e))

    tx = p.emissions.claimThrough(e, sender=a)

    share = EPOCH_EMISSION * STAKE // (8 * STAKE)
    assert event_args(tx, p.bme.EmissionMinted) == [normalised(to=a, tokens=share)]
    assert event_args(tx, p.emissions.RewardsClaimed) == [
        normalised(operator=a, fromEpoch=e - 1, toEpoch=e, tokens=share)
    ]
    assert p.token.balanceOf(a) == 100 * CMP + share
    p.emissions.claimThrough(e, sender=b)
    p.emissions.claimThrough(e, sender=c)
    claimed = [int(p.emissions.claimerOf(op)[1]) for op in (a, b, c)]
    assert claimed == [share, 2 * share, 5 * share]
    # Invariant 7: an epoch's claims never exceed its emission, and equal it (to rounding) once all claimed.
    assert sum(claimed) == EPOCH_EMISSION == p.emissions.totalReleased() <= p.emissions.hardCap()
    assert p.token.balanceOf(p.emissions.address) == 0  # minted to the claimers, never held


def test_claim_rounds_down_and_never_mints_the_dust(protocol: Deployed, chain: Any, ops: list[Any]) -> None:
    p = protocol
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, claimable(e))
    for op in ops:
        p.emissions.claimThrough(e, sender=op)
    third = EPOCH_EMISSION // 3  # thirds of 2,000,000 CMP do not divide evenly
    assert [int(p.emissions.claimerOf(op)[1]) for op in ops] == [third] * 3
    assert p.emissions.totalReleased() == 3 * third == EPOCH_EMISSION - 2
    assert p.token.balanceOf(p.emissions.address) == 0


def test_one_claim_covers_every_epoch_past_the_window(protocol: Deployed, chain: Any, ops: list[Any]) -> None:
    p, (a, b, _) = protocol, ops
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, e + 1, 10)
    p.registry.requestUnbonding(sender=b)  # b leaves during e + 1: its share of e + 1 on goes to a and c
    at_epoch(p, chain, claimable(e + 3))
    third, half = EPOCH_EMISSION // 3, EPOCH_EMISSION // 2
    assert p.emissions.pendingRewards(a) == (e - 1, e + 3, third + third + 2 * half)

    tx = p.emissions.claim(sender=a)

    assert event_args(tx, p.emissions.RewardsClaimed) == [
        normalised(operator=a, fromEpoch=e - 1, toEpoch=e + 3, tokens=2 * third + 2 * half)
    ]
    assert p.emissions.claimerOf(a) == (e + 4, 2 * third + 2 * half)
    assert p.emissions.pendingRewards(b)[2] == third  # e only: leaving during e + 1 forfeited it


def test_claim_of_an_epoch_that_has_not_ended_reverts(protocol: Deployed, ops: list[Any]) -> None:
    p, a = protocol, ops[0]
    current = int(p.escrow.currentEpoch())
    with reverts(p.emissions.EmissionScheduleEpochNotEnded, epoch=current, currentEpoch=current):
        p.emissions.claimThrough(current, sender=a)


def test_a_claim_inside_the_challenge_window_is_refused(
    protocol: Deployed, chain: Any, ops: list[Any]
) -> None:
    p, a = protocol, ops[0]
    e = int(p.escrow.currentEpoch()) + 1
    for current in range(e + 1, claimable(e)):  # e has ended, but its challenge window is still open
        at_epoch(p, chain, current)
        with reverts(p.emissions.EmissionScheduleInChallengeWindow, epoch=e, claimableFromEpoch=claimable(e)):
            p.emissions.claimThrough(e, sender=a)
        assert p.emissions.pendingRewards(a)[2] == 0
    at_epoch(p, chain, claimable(e))
    assert p.emissions.claimThrough(e, sender=a).return_value == EPOCH_EMISSION // 3


def test_claim_before_any_epoch_is_past_the_window_reverts(
    protocol: Deployed, chain: Any, ops: list[Any]
) -> None:
    p, a = protocol, ops[0]
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, e + DELAY)
    # claim() takes epochs through current - 1 - delay = e - 1, in which a was not yet rewardable.
    with reverts(p.emissions.EmissionScheduleNothingToClaim, operator=a, fromEpoch=e - 1, toEpoch=e - 1):
        p.emissions.claim(sender=a)


def test_a_second_claim_reverts(protocol: Deployed, chain: Any, ops: list[Any]) -> None:
    p, a = protocol, ops[0]
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, claimable(e))
    p.emissions.claim(sender=a)
    with reverts(p.emissions.EmissionScheduleAlreadyClaimed, operator=a, epoch=e, nextEpoch=e + 1):
        p.emissions.claim(sender=a)
    with reverts(p.emissions.EmissionScheduleAlreadyClaimed, operator=a, epoch=e, nextEpoch=e + 1):
        p.emissions.claimThrough(e, sender=a)


def test_claim_by_an_account_that_never_registered_reverts(
    protocol: Deployed, chain: Any, wallet: Any, ops: list[Any]
) -> None:
    epoch = int(protocol.escrow.currentEpoch())
    at_epoch(protocol, chain, claimable(epoch + 1))
    with reverts(protocol.registry.OperatorRegistryUnknownOperator, operator=wallet):
        protocol.emissions.claim(sender=wallet)


def wash(p: Deployed, chain: Any, operator: Any, jobs: int, n: int) -> tuple[int, int]:
    """The devnet reproduction of the finding: `operator` burns CMP for `jobs` jobs it pays for itself and the
    relayer settles each to `operator`, charging its whole reservation; returns the CMP burned and the credits
    charged."""
    burned = charged = 0
    charge = 800 * 10**6  # $800 of work per job, about the most one settlement's token count can charge
    for i in range(jobs):
        spec = spec_hash(50_000 + n + i)
        before = int(p.token.balanceOf(operator))
        p.escrow.burnForJob(
            charge * 10**12 * 10_000 // 9_975 + CMP,
            charge,
            terms(spec, head_time(chain) + 3600),
            sender=operator,
        )
        burned += before - int(p.token.balanceOf(operator))
        job_id = int(p.escrow.jobIdFor(operator, spec))
        p.escrow.settle(
            [settlement(job_id, operator, 0, output_tokens_for(charge), result_hash(n + i))], sender=p.relayer
        )
        charged += charge
    return burned, charged


def test_paying_for_ones_own_jobs_earns_no_emission(protocol: Deployed, chain: Any, accounts: Any) -> None:
    """Finding 4: an operator that pays for its own jobs and answers them earned the emission pro-rata to that
    self-paid work. Now it earns its stake share, exactly as an honest staker with the same stake, and the
    round trip costs it the spreads."""
    p = protocol
    washer = operator_with(p, accounts, STAKE, extra=20_000 * CMP)
    honest = operator_with(p, accounts, STAKE)
    for op in (washer, honest):
        p.registry.register(STAKE, "http://node/v1", [1], sender=op)
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, e, 10)
    earn(p, chain, honest, p.users[0], 100 * CMP, 10 * 10**6, 40_000)  # $10 of honest work
    burned, charged = wash(p, chain, washer, 10, 0)  # $8,000 of self-paid work, settled by the relayer
    assert int(p.escrow.workOf(washer, e)) == charged == 8_000 * 10**6
    # Under the rule this replaces (emission pro-rata to work) the washer would take 99.8 % of the epoch.
    assert charged * 1000 // int(p.escrow.epochWork(e)) == 998
    at_epoch(p, chain, claimable(e))
    washer_start = int(p.token.balanceOf(washer))

    rewards = [int(p.emissions.claimThrough(e, sender=op).return_value) for op in (washer, honest)]
    p.bme.redeem(int(p.escrow.earningsOf(washer)), 0, sender=washer)

    assert rewards == [EPOCH_EMISSION // 2, EPOCH_EMISSION // 2]  # the stake shares: volume changes nothing
    assert [p.emissions.claimerOf(op)[1] for op in (washer, honest)] == [EPOCH_EMISSION // 2] * 2
    redeemed = int(p.token.balanceOf(washer)) - washer_start - rewards[0]
    assert redeemed < burned  # the self-payment round trip loses the mint and redemption spreads
    assert p.emissions.totalReleased() == EPOCH_EMISSION


def test_a_slash_forfeits_the_unclaimed_rewards_of_the_slashed_epochs(
    protocol: Deployed, chain: Any, ops: list[Any]
) -> None:
    p, (a, b, c) = protocol, ops
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, claimable(e))
    p.emissions.claimThrough(e, sender=a)  # a claimed epoch e before the slash: that stays claimed
    slash_epoch = claimable(e)
    tx = p.registry.slash(a, STAKE // 2, EVIDENCE, sender=p.slasher)
    assert event_args(tx, p.registry.RewardsForfeited) == [
        normalised(operator=a, beforeEpoch=slash_epoch + 1)
    ]
    assert p.registry.slashedThrough(a) == slash_epoch + 1
    # Epochs e + 1 to the slash epoch were earned but not claimed: all forfeited; a is jailed from then on.
    at_epoch(p, chain, claimable(slash_epoch + 1))
    with reverts(
        p.emissions.EmissionScheduleNothingToClaim, operator=a, fromEpoch=e + 1, toEpoch=slash_epoch + 1
    ):
        p.emissions.claim(sender=a)
    assert p.emissions.pendingRewards(a)[2] == 0
    # The others' shares are unchanged through the slash epoch; then the emission is theirs alone.
    third, half = EPOCH_EMISSION // 3, EPOCH_EMISSION // 2
    tokens = int(p.emissions.claimThrough(slash_epoch + 1, sender=b).return_value)
    assert tokens == third * (slash_epoch + 1 - e) + half
    # Nothing of a's forfeited share was minted: minted = claims.
    p.emissions.claimThrough(slash_epoch + 1, sender=c)
    assert p.emissions.totalReleased() == third + 2 * tokens
    # Unjailed, a earns again from the epoch after the unjailing, on its remaining stake.
    p.registry.unjail(a, sender=p.slasher)
    back = int(p.escrow.currentEpoch()) + 1
    assert (p.registry.rewardStakeAt(a, back - 1), p.registry.rewardStakeAt(a, back)) == (0, STAKE // 2)
    at_epoch(p, chain, claimable(back))
    assert p.emissions.claimThrough(back, sender=a).return_value == EPOCH_EMISSION * (STAKE // 2) // (
        STAKE // 2 + 2 * STAKE
    )


def test_joining_during_an_epoch_earns_nothing_for_it(protocol: Deployed, chain: Any, accounts: Any) -> None:
    p = protocol
    (a,) = staked(p, accounts, [STAKE])
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, e, 10)
    (late,) = staked(p, accounts, [3 * STAKE])  # joins during e
    assert p.registry.rewardWeights(late, e, e + 1) == ([0, 3 * STAKE], [STAKE, 4 * STAKE])
    at_epoch(p, chain, claimable(e + 1))
    assert p.emissions.pendingRewards(late) == (e, e + 1, EPOCH_EMISSION * 3 // 4)
    assert p.emissions.claim(sender=a).return_value == EPOCH_EMISSION + EPOCH_EMISSION // 4


def test_leaving_during_an_epoch_forfeits_it(protocol: Deployed, chain: Any, ops: list[Any]) -> None:
    p, (a, b, _) = protocol, ops
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, e + 1, 10)
    p.registry.requestUnbonding(sender=a)  # during e + 1
    assert p.registry.rewardWeights(a, e, e + 2) == ([STAKE, 0, 0], [3 * STAKE, 3 * STAKE, 2 * STAKE])
    at_epoch(p, chain, claimable(e + 2))
    assert p.emissions.claimThrough(e + 2, sender=a).return_value == EPOCH_EMISSION // 3
    # Epoch e + 1's weights sum to less than its total: a's share of it is never minted.
    assert (
        p.emissions.claimThrough(e + 2, sender=b).return_value
        == 2 * (EPOCH_EMISSION // 3) + EPOCH_EMISSION // 2
    )


def test_emission_goes_through_the_mint_window(
    protocol: Deployed, chain: Any, ops: list[Any], gov: Governance
) -> None:
    p, a = protocol, ops[0]
    gov.execute(p.bme.setEmissionLimit, EPOCH_EMISSION // 3 - 1)
    push(p, chain, CMP)
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, claimable(e))
    available = int(p.bme.emissionAvailable())
    with reverts(p.bme.BmeRateLimited, requested=EPOCH_EMISSION // 3, available=available):
        p.emissions.claim(sender=a)
    assert p.emissions.totalReleased() == 0
    gov.execute(p.bme.setEmissionLimit, 5 * EPOCH_EMISSION)
    p.emissions.claim(sender=a)
    assert p.bme.emissionAvailable() == 5 * EPOCH_EMISSION - EPOCH_EMISSION // 3
    assert p.bme.mintAvailable() == p.bme.mintLimitPerWindow()  # redemptions' window is untouched


def test_a_large_emission_claim_does_not_block_redemptions(
    protocol: Deployed, chain: Any, ops: list[Any], gov: Governance
) -> None:
    """A claim of several epochs at once fills the emission window; with one window shared with redemptions
    that left operators unable to redeem their earnings."""
    p, (a, b, _) = protocol, ops
    third = EPOCH_EMISSION // 3
    gov.execute(p.bme.setEmissionLimit, 3 * third)
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, claimable(e + 2))
    tx = p.emissions.claim(sender=a)  # three epochs' share at once: the emission window's whole limit
    assert event_args(tx, p.bme.EmissionMinted) == [normalised(to=a, tokens=3 * third)]
    assert p.bme.emissionAvailable() == 0
    with reverts(p.bme.BmeRateLimited, requested=3 * third, available=0):
        p.emissions.claim(sender=b)

    earn(p, chain, a, p.users[0], 100 * CMP, 10 * CRD, 1)
    redeemable = p.bme.mintAvailable()
    assert redeemable == p.bme.mintLimitPerWindow() == 10_000_000 * CMP
    p.bme.redeem(10 * CRD, 0, sender=a)
    assert p.bme.mintAvailable() == redeemable - 10 * CMP
    assert p.bme.emissionAvailable() == 0


def test_pause_stops_claims(protocol: Deployed, chain: Any, ops: list[Any]) -> None:
    p, a = protocol, ops[0]
    e = int(p.escrow.currentEpoch()) + 1
    at_epoch(p, chain, claimable(e))
    p.bme.pause(sender=p.deployer)  # the deployer is the guardian in the tests
    with reverts(p.bme.EnforcedPause):
        p.emissions.claim(sender=a)


def test_only_the_schedule_mints_emissions(protocol: Deployed) -> None:
    with reverts(protocol.bme.AccessControlUnauthorizedAccount, account=protocol.users[0]):
        protocol.bme.mintEmission(protocol.users[0], 1, sender=protocol.users[0])


def test_pending_rewards_of_a_stranger_reverts(protocol: Deployed, wallet: Any) -> None:
    call_reverts(
        protocol.registry.OperatorRegistryUnknownOperator,
        protocol.emissions.pendingRewards,
        wallet,
        operator=wallet,
    )

"""The emission schedule and reward claims: the deployed schedule and its hard cap, pro-rata claims of
released epochs, the errors of early, repeated and empty claims, releases through the BME core's emission
window (apart from redemptions'), and invariant 7 (emission never exceeds the cap; an epoch's claims never
exceed its emission, and equal it to rounding once all have claimed)."""

from __future__ import annotations

from typing import Any

import pytest

from bme.chain.deploy import role
from bme.economics.emission import DEFAULT_HARD_CAP, Schedule, Segment
from tests.conftest import CMP, CRD, Deployed
from tests.contracts.helpers import Governance, call_reverts, earn, event_args, normalised, push, reverts

EPOCH_EMISSION = 2_000_000 * CMP  # the default schedule's first segment
STAKE = 1_000 * CMP
EVIDENCE = b"\x07" * 32


def at_epoch(p: Deployed, chain: Any, epoch: int, offset: int = 0) -> None:
    """Mines a block `offset` seconds into `epoch`, then pushes a fresh $1.00 price."""
    genesis, length = int(p.escrow.epochGenesis()), int(p.escrow.epochLength())
    target = genesis + epoch * length + offset
    if target > int(chain.blocks.head.timestamp):
        chain.mine(timestamp=target)
    push(p, chain, CMP)


@pytest.fixture
def ops(protocol: Deployed, accounts: Any) -> list[Any]:
    """Three fresh registered operators, each holding 100 CMP besides its stake."""
    p = protocol
    out = []
    for _ in range(3):
        a = accounts.generate_test_account()
        p.deployer.transfer(a, 10**18)
        p.token.transfer(a, STAKE + 100 * CMP, sender=p.users[0])
        p.token.approve(p.registry.address, STAKE, sender=a)
        p.registry.register(STAKE, "http://node/v1", [1], sender=a)
        out.append(a)
    return out


class Jobs:
    """Jobs paid by users and settled to operators, numbered so that every request commitment is new."""

    def __init__(self, p: Deployed, chain: Any) -> None:
        self.p, self.chain, self.n = p, chain, 0

    def work(self, operator: Any, charge: int) -> None:
        self.n += 1
        earn(self.p, self.chain, operator, self.p.users[self.n % 4], 100 * CMP, charge, 10_000 + self.n)


@pytest.fixture
def jobs(protocol: Deployed, chain: Any) -> Jobs:
    return Jobs(protocol, chain)


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


@pytest.mark.parametrize(
    ("segments", "cap", "error", "args"),
    [
        ([(10, 100, 0, 0)], 999, "EmissionScheduleExceedsCap", {"bound": 1000, "cap": 999}),
        ([(0, 100, 0, 0)], 10**30, "EmissionScheduleExceedsCap", {"bound": 2**256 - 1}),
        ([(0, 100, 2500, 4)], 1599, "EmissionScheduleExceedsCap", {"bound": 1600}),
        ([(0, 100, 10_000, 4)], 10**30, "EmissionScheduleInvalidSegment", {"index": 0}),
        ([(5, 1, 0, 0), (0, 100, 100, 0)], 10**30, "EmissionScheduleInvalidSegment", {"index": 1}),
        ([(0, 1, 100, 1), (5, 1, 0, 0)], 10**30, "EmissionScheduleInvalidSegment", {"index": 0}),
        ([], 10**30, "EmissionScheduleInvalidSegment", {"index": 0}),
        ([(1, 1, 0, 0)] * 5, 10**30, "EmissionScheduleInvalidSegment", {"index": 5}),
    ],
)
def test_constructor_refuses_malformed_or_uncapped_schedules(
    protocol: Deployed,
    project: Any,
    segments: list[tuple[int, ...]],
    cap: int,
    error: str,
    args: dict[str, Any],
) -> None:
    p = protocol
    with reverts(getattr(project.EmissionSchedule, error), **args):
        project.EmissionSchedule.deploy(
            p.escrow, p.registry, p.bme, p.token, cap, segments, sender=p.deployer
        )


def test_a_decaying_schedule_matches_the_model_epoch_by_epoch(protocol: Deployed, project: Any) -> None:
    p = protocol
    segments = (Segment(3, 7 * CMP + 1), Segment(5, 3 * CMP, 1_234, 2), Segment(0, CMP + 3, 999, 1))
    model = Schedule(segments, 10**30)
    e = project.EmissionSchedule.deploy(
        p.escrow, p.registry, p.bme, p.token, 10**30, [s.as_tuple() for s in segments], sender=p.deployer
    )
    assert e.scheduleBound() == model.bound
    assert [tuple(s) for s in e.segments()] == [s.as_tuple() for s in segments]
    for epoch in [*range(12), 50, 1000, 2**20, 2**40]:
        assert e.epochEmission(epoch) == model.emission_at(epoch), epoch
    assert e.epochEmission(4) == 3 * CMP and e.epochEmission(5) == 3 * CMP * 8766 // 10_000


def test_claim_pays_each_operator_its_pro_rata_share(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    p, (a, b, c) = protocol, ops
    epoch = int(p.escrow.currentEpoch())
    for op, charge in [(a, 1_000_000), (b, 2_000_000), (c, 4_000_000), (a, 1_000_000)]:
        jobs.work(op, charge)  # a: 2, b: 2, c: 4 CRD of work; 8 in all
    at_epoch(p, chain, epoch + 1)

    tx = p.emissions.claim(sender=a)

    share = EPOCH_EMISSION * 2_000_000 // 8_000_000
    assert event_args(tx, p.emissions.EmissionReleased) == [
        normalised(fromEpoch=0, toEpoch=epoch, tokens=EPOCH_EMISSION)
    ]
    assert event_args(tx, p.bme.EmissionMinted) == [normalised(to=p.emissions.address, tokens=EPOCH_EMISSION)]
    assert event_args(tx, p.emissions.RewardsClaimed) == [
        normalised(operator=a, fromEpoch=epoch, toEpoch=epoch, tokens=share)
    ]
    assert p.token.balanceOf(a) == 100 * CMP + share
    p.emissions.claim(sender=b)
    p.emissions.claim(sender=c)
    claimed = [int(p.emissions.claimerOf(op)[1]) for op in (a, b, c)]
    assert claimed == [share, share, EPOCH_EMISSION * 4 // 8]
    # Invariant 7: an epoch's claims never exceed its emission, and equal it (to rounding) once all claimed.
    assert sum(claimed) == EPOCH_EMISSION
    assert p.token.balanceOf(p.emissions.address) == 0
    assert p.emissions.totalReleased() == EPOCH_EMISSION <= p.emissions.hardCap()


def test_claim_rounds_down_and_leaves_the_dust_with_the_schedule(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    p = protocol
    epoch = int(p.escrow.currentEpoch())
    for op in ops:
        jobs.work(op, 1_000_000)  # thirds of 2,000,000 CMP do not divide evenly
    at_epoch(p, chain, epoch + 1)
    for op in ops:
        p.emissions.claim(sender=op)
    third = EPOCH_EMISSION // 3
    assert [int(p.emissions.claimerOf(op)[1]) for op in ops] == [third] * 3
    assert p.token.balanceOf(p.emissions.address) == EPOCH_EMISSION - 3 * third == 2


def test_one_claim_covers_every_unclaimed_finished_epoch(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    p, (a, b, _) = protocol, ops
    start = int(p.escrow.currentEpoch())
    plan = {0: [(a, 3_000_000), (b, 1_000_000)], 1: [], 2: [(a, 500_000)], 3: [(b, 500_000)]}
    for offset, work in plan.items():
        at_epoch(p, chain, start + offset, 10)
        for op, charge in work:
            jobs.work(op, charge)
    at_epoch(p, chain, start + 4)
    assert p.emissions.pendingRewards(a) == (start, start + 3, EPOCH_EMISSION * 3 // 4 + EPOCH_EMISSION)

    tx = p.emissions.claim(sender=a)

    # Epoch start + 1 had no work: nothing is minted for it.
    assert event_args(tx, p.emissions.EmissionReleased) == [
        normalised(fromEpoch=0, toEpoch=start + 3, tokens=3 * EPOCH_EMISSION)
    ]
    assert event_args(tx, p.emissions.RewardsClaimed) == [
        normalised(operator=a, fromEpoch=start, toEpoch=start + 3, tokens=EPOCH_EMISSION * 7 // 4)
    ]
    assert p.emissions.claimerOf(a) == (start + 4, EPOCH_EMISSION * 7 // 4)
    assert p.emissions.releasedThrough() == start + 4
    tx = p.emissions.claim(sender=b)
    assert event_args(tx, p.emissions.EmissionReleased) == []  # already released: a plain transfer
    assert p.token.balanceOf(p.emissions.address) == 0


def test_claim_of_an_epoch_that_has_not_ended_reverts(protocol: Deployed, ops: list[Any], jobs: Jobs) -> None:
    p, a = protocol, ops[0]
    jobs.work(a, 1_000_000)
    current = int(p.escrow.currentEpoch())
    with reverts(p.emissions.EmissionScheduleEpochNotEnded, epoch=current, currentEpoch=current):
        p.emissions.claimThrough(current, sender=a)
    if current == 0:
        with reverts(p.emissions.EmissionScheduleEpochNotEnded, epoch=0, currentEpoch=0):
            p.emissions.claim(sender=a)


def test_a_second_claim_reverts(protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs) -> None:
    p, a = protocol, ops[0]
    epoch = int(p.escrow.currentEpoch())
    jobs.work(a, 1_000_000)
    at_epoch(p, chain, epoch + 1)
    p.emissions.claim(sender=a)
    with reverts(p.emissions.EmissionScheduleAlreadyClaimed, operator=a, epoch=epoch, nextEpoch=epoch + 1):
        p.emissions.claim(sender=a)
    with reverts(p.emissions.EmissionScheduleAlreadyClaimed, operator=a, epoch=epoch, nextEpoch=epoch + 1):
        p.emissions.claimThrough(epoch, sender=a)


def test_claim_with_no_work_reverts(protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs) -> None:
    p, (a, b, _) = protocol, ops
    epoch = int(p.escrow.currentEpoch())
    jobs.work(a, 1_000_000)
    at_epoch(p, chain, epoch + 1)
    with reverts(p.emissions.EmissionScheduleNothingToClaim, operator=b, fromEpoch=epoch, toEpoch=epoch):
        p.emissions.claim(sender=b)
    assert p.emissions.releasedThrough() == 0  # the failed claim released nothing


def test_claim_by_an_account_that_never_registered_reverts(
    protocol: Deployed, chain: Any, wallet: Any, ops: list[Any]
) -> None:
    epoch = int(protocol.escrow.currentEpoch())
    at_epoch(protocol, chain, epoch + 1)
    with reverts(protocol.registry.OperatorRegistryUnknownOperator, operator=wallet):
        protocol.emissions.claim(sender=wallet)


def test_slashed_and_unbonding_operators_still_claim_work_done(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    p, a = protocol, ops[0]
    epoch = int(p.escrow.currentEpoch())
    jobs.work(a, 1_000_000)
    p.registry.slash(a, STAKE, EVIDENCE, sender=p.slasher)
    p.registry.requestUnbonding(sender=a)
    at_epoch(p, chain, epoch + 1)
    p.emissions.claim(sender=a)
    assert p.emissions.claimerOf(a) == (epoch + 1, EPOCH_EMISSION)


def test_release_ahead_of_claims_and_nothing_to_release(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    p = protocol
    epoch = int(p.escrow.currentEpoch())
    jobs.work(ops[0], 1_000_000)
    at_epoch(p, chain, epoch + 2)
    tx = p.emissions.release(1, sender=p.users[0])
    assert event_args(tx, p.emissions.EmissionReleased)[0]["toEpoch"] == 0
    p.emissions.release(10, sender=p.users[0])
    assert (p.emissions.releasedThrough(), p.emissions.totalReleased()) == (epoch + 2, EPOCH_EMISSION)
    with reverts(p.emissions.EmissionScheduleNothingToRelease, releasedThrough=epoch + 2):
        p.emissions.release(1, sender=p.users[0])


def test_emission_goes_through_the_mint_window(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs, gov: Governance
) -> None:
    p, a = protocol, ops[0]
    gov.execute(p.bme.setEmissionLimit, EPOCH_EMISSION - 1)
    push(p, chain, CMP)
    epoch = int(p.escrow.currentEpoch())
    jobs.work(a, 1_000_000)
    at_epoch(p, chain, epoch + 1)
    available = int(p.bme.emissionAvailable())
    with reverts(p.bme.BmeRateLimited, requested=EPOCH_EMISSION, available=available):
        p.emissions.claim(sender=a)
    gov.execute(p.bme.setEmissionLimit, 5 * EPOCH_EMISSION)
    p.emissions.claim(sender=a)
    assert p.bme.emissionAvailable() == 5 * EPOCH_EMISSION - EPOCH_EMISSION
    assert p.bme.mintAvailable() == p.bme.mintLimitPerWindow()  # redemptions' window is untouched


def test_an_emission_backlog_release_does_not_block_redemptions(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    """Anyone may release a backlog of epochs; with one shared window that used up redemptions' room."""
    p, a = protocol, ops[0]
    epoch = int(p.escrow.currentEpoch())
    for k in range(5):
        at_epoch(p, chain, epoch + k)
        jobs.work(a, 10 * CRD)
    at_epoch(p, chain, epoch + 5)
    assert p.bme.emissionLimitPerWindow() == 5 * EPOCH_EMISSION
    tx = p.emissions.release(10, sender=p.users[3])  # anyone: five epochs, the emission window's whole limit
    assert event_args(tx, p.bme.EmissionMinted) == [normalised(to=p.emissions, tokens=5 * EPOCH_EMISSION)]
    assert p.bme.emissionAvailable() == 0

    redeemable = p.bme.mintAvailable()
    assert redeemable == p.bme.mintLimitPerWindow() == 10_000_000 * CMP
    p.bme.redeem(50 * CRD, 0, sender=a)
    assert p.bme.mintAvailable() == redeemable - 50 * CMP
    assert p.bme.emissionAvailable() == 0


def test_pause_stops_releases_but_not_claims_of_released_epochs(
    protocol: Deployed, chain: Any, ops: list[Any], jobs: Jobs
) -> None:
    p, (a, b, _) = protocol, ops
    epoch = int(p.escrow.currentEpoch())
    jobs.work(a, 1_000_000)
    jobs.work(b, 1_000_000)
    at_epoch(p, chain, epoch + 1)
    p.emissions.claim(sender=a)
    jobs.work(a, 1_000_000)
    at_epoch(p, chain, epoch + 2)
    p.bme.pause(sender=p.deployer)  # the deployer is the guardian in the tests
    p.emissions.claimThrough(epoch, sender=b)  # epoch `epoch` is released: a transfer
    with reverts(p.bme.EnforcedPause):
        p.emissions.claim(sender=a)  # epoch + 1 needs a release


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

"""Limits that are as tight as they look. Each test performs an attack on a limit and shows it fails: minting
twice the limit across a bucket boundary, blocking redemptions with an emission backlog, pausing for good,
turning a stale price into a collateral halt, losing CRD in a protocol contract, swapping the escrow, and
minting past the emission hard cap through governance."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bme.chain.deploy import role
from bme.economics.params import MAX_MINT_LIMIT_PER_WINDOW, MAX_PAUSE, PAUSE_COOLDOWN
from bme.economics.window import WindowState, available, bucket_length, consume
from tests.conftest import CMP, CRD, Deployed
from tests.contracts.helpers import (
    HALT_ORACLE,
    WARNING,
    ZERO32,
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
from tests.contracts.test_bme import CR_BP, burn_1000_at_one_dollar, status_changes, sync_at

WINDOW = 86_400
BUCKET = bucket_length(WINDOW)  # 21,600 s: the window counts the current bucket and the four before it


@pytest.fixture(scope="module")
def protocol(protocol: Deployed) -> Deployed:
    """The shared deployment with its operators active (`with_active_operators`)."""
    return with_active_operators(protocol)


def _bucket_end(p: Deployed, chain: Any) -> int:
    """The last second of a bucket at least an hour after the head (room for a price push before it)."""
    start = p.window_start
    k = (head_time(chain) + 3600 - start) // BUCKET + 1
    return start + k * BUCKET - 1


def _redeem_at(p: Deployed, chain: Any, operator: Any, timestamp: int, credits: int) -> Any:
    price_at(p, chain, timestamp - 1, CMP)
    next_tx_at(chain, timestamp)
    return p.bme.redeem(credits, 0, sender=operator)


# ---------------------------------------------------------------- a true window bound


def test_twice_the_limit_across_a_bucket_boundary_is_refused(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    """The two-bucket window admitted the limit at the end of one window and almost the limit again just under
    a window later (1.99x in one window's span); now the second redemption finds nothing available."""
    p, operator = protocol, protocol.operators[0]
    push(p, chain, CMP)
    earn(p, chain, operator, p.users[0], 200 * CMP, 150 * CRD, 1)
    gov.execute(p.bme.setMintLimit, 60 * CMP)

    first = _bucket_end(p, chain)
    _redeem_at(p, chain, operator, first, 60 * CRD)
    # A span of exactly one window, first second to last: both redemptions would fall in it.
    last = first + WINDOW - 1
    price_at(p, chain, last - 1, CMP)
    next_tx_at(chain, last)
    with reverts(p.bme.BmeRateLimited, requested=60 * CMP, available=0):
        p.bme.redeem(60 * CRD, 0, sender=operator)

    # Once the first redemption's bucket is five buckets old it no longer counts.
    _redeem_at(p, chain, operator, first + 1 + 4 * BUCKET, 60 * CRD)
    assert p.token.balanceOf(operator) == 120 * CMP
    assert p.bme.mintAvailable() == 0


def test_the_limit_frees_up_bucket_by_bucket(protocol: Deployed, chain: Any, gov: Governance) -> None:
    p, operator = protocol, protocol.operators[0]
    push(p, chain, CMP)
    earn(p, chain, operator, p.users[0], 200 * CMP, 150 * CRD, 1)
    gov.execute(p.bme.setMintLimit, 60 * CMP)
    first = _bucket_end(p, chain) + 1  # the first second of a bucket
    _redeem_at(p, chain, operator, first, 10 * CRD)
    _redeem_at(p, chain, operator, first + BUCKET, 20 * CRD)  # the first second of the next
    # The first bucket is counted through its fourth successor, and dropped at its fifth.
    chain.mine(timestamp=first + 5 * BUCKET - 1)
    assert p.bme.mintAvailable() == 30 * CMP
    chain.mine(timestamp=first + 5 * BUCKET)
    assert p.bme.mintAvailable() == 40 * CMP
    chain.mine(timestamp=first + 6 * BUCKET)
    assert p.bme.mintAvailable() == 60 * CMP


#: Gaps between redemptions: seconds, across bucket and window boundaries.
GAPS = st.sampled_from([2, 600, 3_600, 21_599, 21_600, 43_200, 86_399, 86_400])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(GAPS, st.integers(1, 40)), min_size=3, max_size=10))
def test_the_window_on_chain_admits_what_the_model_admits(
    protocol: Deployed, chain: Any, gov: Governance, steps: list[tuple[int, int]]
) -> None:
    """Random redemptions at random times under a 50 CMP limit: each succeeds on chain exactly when the
    model's window (whose bound over every span the pure tests check) admits it, with the same amount free."""
    p, operator, limit = protocol, protocol.operators[0], 50 * CMP
    snapshot = chain.snapshot()
    try:
        push(p, chain, CMP)
        earn(p, chain, operator, p.users[0], 1000 * CMP, 500 * CRD, 1)
        gov.execute(p.bme.setMintLimit, limit)
        state, now = WindowState(start=p.window_start), head_time(chain)
        for dt, amount in steps:
            now += dt
            price_at(p, chain, now - 1, CMP)
            next_tx_at(chain, now)
            nxt = consume(state, now, WINDOW, limit, amount * CMP)
            if nxt is None:
                free = available(state, now, WINDOW, limit)
                with reverts(p.bme.BmeRateLimited, requested=amount * CMP, available=free):
                    p.bme.redeem(amount * CRD, 0, sender=operator)
            else:
                p.bme.redeem(amount * CRD, 0, sender=operator)
                state = nxt
            chain.mine(timestamp=now + 1)
            assert p.bme.mintAvailable() == available(state, now + 1, WINDOW, limit)
            now += 1
    finally:
        chain.restore(snapshot)


# ---------------------------------------------------------------- separate windows


def test_the_emission_limit_is_its_own(protocol: Deployed, gov: Governance) -> None:
    bme = protocol.bme
    tx = gov.execute(bme.setEmissionLimit, 7 * CMP)
    assert event_args(tx, bme.EmissionLimitUpdated) == [normalised(emissionLimitPerWindow=7 * CMP)]
    assert bme.emissionLimitPerWindow() == 7 * CMP
    assert bme.emissionAvailable() == 7 * CMP
    assert bme.mintLimitPerWindow() == 10_000_000 * CMP


# ---------------------------------------------------------------- expiring pauses


def test_a_pause_ends_by_itself_and_cannot_be_renewed_back_to_back(protocol: Deployed, chain: Any) -> None:
    """The guardian pauses; without any transaction the pause ends after MAX_PAUSE, and the guardian cannot
    pause again until the cooldown has passed."""
    bme, escrow, guardian, user = protocol.bme, protocol.escrow, protocol.deployer, protocol.users[0]
    t0 = advance(chain, 1)
    next_tx_at(chain, t0 + 1)
    tx = bme.pause(sender=guardian)
    until = t0 + 1 + MAX_PAUSE
    assert event_args(tx, bme.PauseScheduled) == [
        normalised(pausedUntil=until, nextPauseAt=until + PAUSE_COOLDOWN)
    ]
    next_tx_at(chain, t0 + 2)
    escrow.pause(sender=guardian)  # ends a second later than the BME core's
    chain.mine(timestamp=until - 100)
    assert bme.paused() and escrow.paused()
    with reverts(bme.EnforcedPause):
        bme.burn(100 * CMP, 0, sender=user)

    chain.mine(timestamp=until + 1)  # no transaction ended them: the pauses have expired
    assert not bme.paused() and not escrow.paused()
    push(protocol, chain, CMP)
    bme.burn(100 * CMP, 0, sender=user)
    escrow.openJob(10 * CRD, terms(spec_hash(1), head_time(chain) + 3600), sender=user)

    # Back to back: refused until the cooldown after the pause has passed.
    for contract in (bme, escrow):
        with reverts(contract.PauseCooldown, nextPauseAt=int(contract.nextPauseAt())):
            contract.pause(sender=guardian)
    chain.mine(timestamp=until + 1 + PAUSE_COOLDOWN)
    bme.pause(sender=guardian)
    escrow.pause(sender=guardian)
    assert bme.paused() and escrow.paused()


def test_governance_ends_a_pause_early_and_the_cooldown_runs_from_then(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    bme, guardian = protocol.bme, protocol.deployer
    bme.pause(sender=guardian)
    with reverts(bme.EnforcedPause):
        bme.pause(sender=guardian)
    tx = gov.execute(bme.unpause)
    ended = head_time(chain)
    assert event_args(tx, bme.PauseScheduled) == [
        normalised(pausedUntil=ended, nextPauseAt=ended + PAUSE_COOLDOWN)
    ]
    assert not bme.paused()
    with reverts(bme.PauseCooldown, nextPauseAt=ended + PAUSE_COOLDOWN):
        bme.pause(sender=guardian)
    with reverts(bme.ExpectedPause):
        gov.execute(bme.unpause)


# ---------------------------------------------------------------- oracle gaps


def test_a_momentarily_stale_price_does_not_become_a_collateral_halt(protocol: Deployed, chain: Any) -> None:
    """At a CR of 90.5 % (Warning, inside the halt's hysteresis band) anyone could call syncStatus during a
    30 s gap in price pushes: HaltOracle was recorded and counted as a halt, so once the price was back the
    hysteresis kept burns halted. Now the oracle halt is recorded beside the collateral status."""
    p = protocol
    burn_1000_at_one_dollar(p, chain)
    sync_at(p, chain, 9050)
    assert p.bme.status() == WARNING

    advance(chain, 31)
    tx = p.bme.syncStatus(sender=p.users[3])
    assert status_changes(tx, p) == [normalised(previous=WARNING, current=HALT_ORACLE, crBps=0)]
    assert (p.bme.status(), p.bme.collateralStatus()) == (HALT_ORACLE, WARNING)

    push(p, chain, 9050 * CR_BP)  # the same price again
    tx = p.bme.burn(100 * CMP, 0, sender=p.users[1])
    assert status_changes(tx, p)[0]["previous"] == HALT_ORACLE
    assert p.bme.status() == p.bme.collateralStatus() == WARNING


# ---------------------------------------------------------------- CRD sent where it would be lost


def test_crd_sent_to_the_escrow_or_the_bme_core_is_refused(
    protocol: Deployed, gov: Governance, fresh_price: int
) -> None:
    p, user = protocol, protocol.users[0]
    p.bme.burn(100 * CMP, 0, sender=user)
    outstanding = p.bme.outstandingCredits()
    for sink in (p.escrow, p.bme):
        with reverts(p.credit.ComputeCreditUnreceivable, to=sink):
            p.credit.transfer(sink, CRD, sender=user)
        p.credit.approve(p.users[1], CRD, sender=user)
        with reverts(p.credit.ComputeCreditUnreceivable, to=sink):
            p.credit.transferFrom(user, sink, CRD, sender=p.users[1])
    # Not even once governance names them protocol contracts.
    gov.execute(p.credit.grantRole, p.credit.PROTOCOL_ROLE(), p.escrow)
    with reverts(p.credit.ComputeCreditUnreceivable, to=p.escrow):
        p.credit.transfer(p.escrow, CRD, sender=user)
    assert p.credit.balanceOf(user) == 99_750_000
    assert p.bme.outstandingCredits() == outstanding == 99_750_000


# ---------------------------------------------------------------- the escrow is fixed


def test_governance_cannot_swap_the_escrow(protocol: Deployed, gov: Governance) -> None:
    """`setJobEscrow` let governance point the BME core at a new escrow that could burn any approved holder's
    CMP (`burnForEscrow`) and strand earnings in the old one. It is gone: a timelocked call of it fails."""
    p, attacker = protocol, protocol.users[3]
    data = keccak(text="setJobEscrow(address)")[:4] + bytes(12) + bytes.fromhex(attacker.address[2:])
    salt = b"\x01" * 32
    p.timelock.schedule(p.bme.address, 0, data, ZERO32, salt, gov.delay, sender=p.governor_proposer)
    advance(gov.chain, gov.delay)
    with reverts(p.timelock.FailedCall):
        p.timelock.execute(p.bme.address, 0, data, ZERO32, salt, sender=p.governor_proposer)
    assert p.bme.jobEscrow() == p.escrow.address
    with reverts(p.bme.BmeNotJobEscrow, caller=attacker):
        p.bme.burnForEscrow(p.users[0], 100 * CMP, 0, sender=attacker)


# ---------------------------------------------------------------- minters fixed, limits bounded


def test_governance_cannot_add_a_minter(protocol: Deployed, gov: Governance) -> None:
    """The routes past the emission hard cap: grant CMP's MINTER_ROLE (or CRD's, or the BME core's
    EMITTER_ROLE) to an account governance controls, or grant the roles' admin role first. All revert."""
    p, attacker = protocol, protocol.users[3]
    for contract, minter, admin in (
        (p.token, "MINTER_ROLE", "MINTER_ADMIN_ROLE"),
        (p.credit, "MINTER_ROLE", "MINTER_ADMIN_ROLE"),
        (p.bme, "EMITTER_ROLE", "EMITTER_ADMIN_ROLE"),
    ):
        assert contract.getRoleAdmin(role(minter)) == role(admin) == contract.getRoleAdmin(role(admin))
        for granted in (minter, admin):
            with reverts(
                contract.AccessControlUnauthorizedAccount, account=p.timelock, neededRole=role(admin)
            ):
                gov.execute(contract.grantRole, role(granted), attacker)
            assert not contract.hasRole(role(granted), attacker)
        # Nor can it take a minter away.
        with reverts(contract.AccessControlUnauthorizedAccount, account=p.timelock, neededRole=role(admin)):
            gov.execute(contract.revokeRole, role(minter), p.bme if contract != p.bme else p.emissions)
        for holder in (p.deployer, p.timelock, *p.users):
            assert not contract.hasRole(role(admin), holder)
    with reverts(p.token.AccessControlUnauthorizedAccount, account=attacker, neededRole=role("MINTER_ROLE")):
        p.token.mint(attacker, CMP, sender=attacker)


def test_mint_limits_are_bounded(protocol: Deployed, gov: Governance) -> None:
    bme = protocol.bme
    for setter in (bme.setMintLimit, bme.setEmissionLimit):
        with reverts(
            bme.BmeMintLimitTooHigh, limit=MAX_MINT_LIMIT_PER_WINDOW + 1, maximum=MAX_MINT_LIMIT_PER_WINDOW
        ):
            gov.execute(setter, MAX_MINT_LIMIT_PER_WINDOW + 1)
        with reverts(bme.BmeMintLimitTooHigh, limit=2**128 - 1, maximum=MAX_MINT_LIMIT_PER_WINDOW):
            gov.execute(setter, 2**128 - 1)
        gov.execute(setter, MAX_MINT_LIMIT_PER_WINDOW)
    assert bme.mintLimitPerWindow() == bme.emissionLimitPerWindow() == MAX_MINT_LIMIT_PER_WINDOW

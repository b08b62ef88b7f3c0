"""The operator registry: registration with a stake, updates, unbonding and withdrawal, slashing (burned) and
jail, governance of the minimum stake and the unbonding delay, and the roles after deployment."""

from __future__ import annotations

from typing import Any

import pytest

from bme.chain.deploy import DEFAULT_ADMIN_ROLE, role
from tests.conftest import CMP, Deployed
from tests.contracts.helpers import (
    Governance,
    advance,
    call_reverts,
    event_args,
    next_tx_at,
    normalised,
    reverts,
)

MIN_STAKE = 1_000 * CMP  # OperatorRegistry.DEFAULT_MIN_STAKE
UNBONDING_DELAY = 21 * 86_400  # OperatorRegistry.DEFAULT_UNBONDING_DELAY
NONE, BONDED, UNBONDING = 0, 1, 2
ENDPOINT = "https://node.example:8090/v1"
EVIDENCE = b"\x42" * 32


@pytest.fixture
def operator(protocol: Deployed, wallet: Any) -> Any:
    """A fresh account holding 5,000 CMP, approved for the registry."""
    protocol.token.transfer(wallet, 5_000 * CMP, sender=protocol.users[0])
    protocol.token.approve(protocol.registry.address, 2**256 - 1, sender=wallet)
    return wallet


def register(p: Deployed, operator: Any, stake: int = MIN_STAKE, models: tuple[int, ...] = (1,)) -> Any:
    return p.registry.register(stake, ENDPOINT, list(models), sender=operator)


def state(p: Deployed, operator: Any) -> tuple[int, int, int, int, bool, bool]:
    op = p.registry.operatorOf(operator)
    return (op.stake, op.firstEpoch, op.unbondingEnds, op.status, op.jailed, op.known)


def test_deployment_hands_the_registry_to_the_timelock(protocol: Deployed) -> None:
    reg, gov, me = protocol.registry, protocol.timelock.address, protocol.deployer.address
    assert reg.hasRole(DEFAULT_ADMIN_ROLE, gov) and reg.hasRole(role("GOVERNOR_ROLE"), gov)
    assert not reg.hasRole(DEFAULT_ADMIN_ROLE, me) and not reg.hasRole(role("GOVERNOR_ROLE"), me)
    assert reg.hasRole(role("SLASHER_ROLE"), protocol.slasher.address)  # the tests' configured slasher
    assert (reg.minStake(), reg.unbondingDelay()) == (MIN_STAKE, UNBONDING_DELAY)
    assert reg.token() == protocol.token.address


def test_register_takes_the_stake_and_lists_the_operator(protocol: Deployed, operator: Any) -> None:
    p = protocol
    tx = register(p, operator, 1_500 * CMP, (1, 7))

    assert event_args(tx, p.registry.OperatorRegistered) == [
        normalised(operator=operator, stake=1_500 * CMP, endpoint=ENDPOINT, models=[1, 7])
    ]
    epoch = p.escrow.currentEpoch()
    assert state(p, operator) == (1_500 * CMP, epoch, 0, BONDED, False, True)
    assert p.registry.endpointOf(operator) == ENDPOINT
    assert list(p.registry.modelsOf(operator)) == [1, 7]
    assert p.registry.isActive(operator)
    assert p.registry.firstEpochOf(operator) == epoch
    assert p.token.balanceOf(operator) == 3_500 * CMP
    assert p.token.balanceOf(p.registry.address) == 1_500 * CMP


def test_register_below_the_minimum_stake_reverts(protocol: Deployed, operator: Any) -> None:
    with reverts(protocol.registry.OperatorRegistryStakeTooLow, stake=MIN_STAKE - 1, minStake=MIN_STAKE):
        register(protocol, operator, MIN_STAKE - 1)


def test_register_twice_reverts(protocol: Deployed, operator: Any) -> None:
    register(protocol, operator)
    with reverts(protocol.registry.OperatorRegistryAlreadyRegistered, operator=operator):
        register(protocol, operator)


def test_register_without_allowance_reverts(protocol: Deployed, wallet: Any) -> None:
    protocol.token.transfer(wallet, MIN_STAKE, sender=protocol.users[0])
    with reverts(protocol.token.ERC20InsufficientAllowance, needed=MIN_STAKE):
        register(protocol, wallet)


@pytest.mark.parametrize("endpoint", ["", "x" * 257])
def test_register_with_a_bad_endpoint_reverts(protocol: Deployed, operator: Any, endpoint: str) -> None:
    with reverts(protocol.registry.OperatorRegistryInvalidEndpoint, length=len(endpoint)):
        protocol.registry.register(MIN_STAKE, endpoint, [1], sender=operator)


@pytest.mark.parametrize("count", [0, 33])
def test_register_with_no_or_too_many_models_reverts(protocol: Deployed, operator: Any, count: int) -> None:
    with reverts(protocol.registry.OperatorRegistryInvalidModels, count=count):
        protocol.registry.register(MIN_STAKE, ENDPOINT, list(range(count)), sender=operator)


def test_update_changes_endpoint_and_models(protocol: Deployed, operator: Any) -> None:
    register(protocol, operator)
    tx = protocol.registry.update("http://10.0.0.2:9000/v1", [3, 4, 5], sender=operator)
    assert event_args(tx, protocol.registry.OperatorUpdated) == [
        normalised(operator=operator, endpoint="http://10.0.0.2:9000/v1", models=[3, 4, 5])
    ]
    assert protocol.registry.endpointOf(operator) == "http://10.0.0.2:9000/v1"
    assert list(protocol.registry.modelsOf(operator)) == [3, 4, 5]


def test_update_when_not_registered_reverts(protocol: Deployed, operator: Any) -> None:
    with reverts(protocol.registry.OperatorRegistryNotBonded, operator=operator, status=NONE):
        protocol.registry.update(ENDPOINT, [1], sender=operator)


def test_unbond_then_withdraw_after_the_delay_returns_the_stake(
    protocol: Deployed, chain: Any, operator: Any
) -> None:
    p = protocol
    register(p, operator)
    tx = p.registry.requestUnbonding(sender=operator)
    ends = int(chain.blocks.head.timestamp) + UNBONDING_DELAY
    assert event_args(tx, p.registry.UnbondingRequested) == [
        normalised(operator=operator, stake=MIN_STAKE, unbondingEnds=ends)
    ]
    assert state(p, operator)[2:4] == (ends, UNBONDING)
    assert not p.registry.isActive(operator)
    with reverts(p.registry.OperatorRegistryNotBonded, operator=operator, status=UNBONDING):
        p.registry.update(ENDPOINT, [1], sender=operator)

    next_tx_at(chain, ends - 1)
    with reverts(p.registry.OperatorRegistryUnbondingNotOver, operator=operator, unbondingEnds=ends):
        p.registry.withdraw(sender=operator)
    next_tx_at(chain, ends)
    tx = p.registry.withdraw(sender=operator)

    assert event_args(tx, p.registry.StakeWithdrawn) == [normalised(operator=operator, stake=MIN_STAKE)]
    assert p.token.balanceOf(operator) == 5_000 * CMP
    first = p.registry.firstEpochOf(operator)
    assert state(p, operator) == (0, first, 0, NONE, False, True)
    assert p.registry.endpointOf(operator) == ""
    assert list(p.registry.modelsOf(operator)) == []


def test_withdraw_without_unbonding_reverts(protocol: Deployed, operator: Any) -> None:
    register(protocol, operator)
    with reverts(protocol.registry.OperatorRegistryNotUnbonding, operator=operator, status=BONDED):
        protocol.registry.withdraw(sender=operator)


def test_re_registration_keeps_the_first_epoch(protocol: Deployed, chain: Any, operator: Any) -> None:
    p = protocol
    register(p, operator)
    first = p.registry.firstEpochOf(operator)
    p.registry.requestUnbonding(sender=operator)
    advance(chain, UNBONDING_DELAY)
    p.registry.withdraw(sender=operator)
    assert p.escrow.currentEpoch() > first
    register(p, operator)
    assert p.registry.firstEpochOf(operator) == first


def test_first_epoch_of_a_stranger_reverts(protocol: Deployed, wallet: Any) -> None:
    call_reverts(
        protocol.registry.OperatorRegistryUnknownOperator,
        protocol.registry.firstEpochOf,
        wallet,
        operator=wallet,
    )


def test_slash_burns_stake_and_jails(protocol: Deployed, operator: Any) -> None:
    p = protocol
    register(p, operator, 2_000 * CMP)
    supply = p.token.totalSupply()

    tx = p.registry.slash(operator, 300 * CMP, EVIDENCE, sender=p.slasher)

    assert event_args(tx, p.registry.OperatorSlashed) == [
        normalised(operator=operator, slashed=300 * CMP, remainingStake=1_700 * CMP, evidenceHash=EVIDENCE)
    ]
    assert p.token.totalSupply() == supply - 300 * CMP
    assert p.token.balanceOf(p.registry.address) == 1_700 * CMP
    assert state(p, operator)[0] == 1_700 * CMP and state(p, operator)[4] is True
    assert not p.registry.isActive(operator)

    tx = p.registry.unjail(operator, sender=p.slasher)
    assert event_args(tx, p.registry.OperatorUnjailed) == [normalised(operator=operator)]
    assert p.registry.isActive(operator)


def test_slash_beyond_the_stake_burns_all_of_it(protocol: Deployed, operator: Any) -> None:
    p = protocol
    register(p, operator)
    tx = p.registry.slash(operator, 10**30, EVIDENCE, sender=p.slasher)
    assert event_args(tx, p.registry.OperatorSlashed)[0]["slashed"] == MIN_STAKE
    assert state(p, operator)[0] == 0
    p.registry.unjail(operator, sender=p.slasher)
    assert not p.registry.isActive(operator)  # unjailed, but below the minimum stake


def test_slash_during_unbonding_and_jail_survives_re_registration(
    protocol: Deployed, chain: Any, operator: Any
) -> None:
    p = protocol
    register(p, operator, 2_000 * CMP)
    p.registry.requestUnbonding(sender=operator)
    p.registry.slash(operator, 500 * CMP, EVIDENCE, sender=p.slasher)
    advance(chain, UNBONDING_DELAY)
    p.registry.withdraw(sender=operator)
    assert p.token.balanceOf(operator) == 4_500 * CMP
    register(p, operator)
    assert state(p, operator)[4] is True
    assert not p.registry.isActive(operator)


def test_slash_by_a_non_slasher_reverts(protocol: Deployed, operator: Any) -> None:
    register(protocol, operator)
    with reverts(protocol.registry.AccessControlUnauthorizedAccount, account=operator):
        protocol.registry.slash(operator, 1, EVIDENCE, sender=operator)


def test_slash_of_an_unregistered_account_or_zero_reverts(protocol: Deployed, operator: Any) -> None:
    p = protocol
    with reverts(p.registry.OperatorRegistryNotRegistered, operator=operator):
        p.registry.slash(operator, 1, EVIDENCE, sender=p.slasher)
    register(p, operator)
    with reverts(p.registry.OperatorRegistryZeroAmount):
        p.registry.slash(operator, 0, EVIDENCE, sender=p.slasher)


def test_unjail_when_not_jailed_reverts(protocol: Deployed, operator: Any) -> None:
    register(protocol, operator)
    with reverts(protocol.registry.OperatorRegistryNotJailed, operator=operator):
        protocol.registry.unjail(operator, sender=protocol.slasher)


def test_min_stake_and_delay_change_only_through_the_timelock(
    protocol: Deployed, operator: Any, gov: Governance
) -> None:
    p = protocol
    with reverts(p.registry.AccessControlUnauthorizedAccount, account=p.deployer):
        p.registry.setMinStake(1, sender=p.deployer)
    register(p, operator, MIN_STAKE)
    tx = gov.execute(p.registry.setMinStake, 2 * MIN_STAKE)
    assert event_args(tx, p.registry.MinStakeUpdated) == [normalised(minStake=2 * MIN_STAKE)]
    assert not p.registry.isActive(operator)  # below the new minimum
    tx = gov.execute(p.registry.setUnbondingDelay, 7 * 86_400)
    assert event_args(tx, p.registry.UnbondingDelayUpdated) == [normalised(unbondingDelay=7 * 86_400)]
    assert p.registry.unbondingDelay() == 7 * 86_400


def test_unbonding_delay_above_a_year_reverts(protocol: Deployed, gov: Governance) -> None:
    operation = gov.schedule(protocol.registry.setUnbondingDelay, 365 * 86_400 + 1)
    advance(gov.chain, gov.delay)
    with reverts(protocol.registry.OperatorRegistryInvalidUnbondingDelay, unbondingDelay=365 * 86_400 + 1):
        gov.execute_scheduled(operation)


# ---------------------------------------------------------------------------------------- rewardable stake


def test_every_stake_change_is_checkpointed_for_the_next_epoch(
    protocol: Deployed, chain: Any, operator: Any
) -> None:
    p, reg = protocol, protocol.registry
    e = int(p.escrow.currentEpoch())
    tx = register(p, operator, 1_500 * CMP)
    assert event_args(tx, reg.RewardStakeChanged) == [
        normalised(operator=operator, epoch=e + 1, stake=1_500 * CMP)
    ]
    assert [reg.rewardStakeAt(operator, k) for k in (e, e + 1, e + 9)] == [0, 1_500 * CMP, 1_500 * CMP]
    assert [reg.totalRewardStakeAt(k) for k in (e, e + 1)] == [0, 1_500 * CMP]
    next_tx_at(chain, int(p.escrow.epochGenesis()) + (e + 1) * int(p.escrow.epochLength()) + 5)
    reg.slash(operator, 500 * CMP, EVIDENCE, sender=p.slasher)  # during e + 1: jailed from e + 2
    assert [reg.rewardStakeAt(operator, k) for k in (e + 1, e + 2)] == [1_500 * CMP, 0]
    assert reg.totalRewardStakeAt(e + 1) == 1_500 * CMP
    assert reg.slashedThrough(operator) == e + 2
    # The slash forfeits every epoch through e + 1 (reported as 0 of 0), and e + 2 has no rewardable stake.
    assert reg.rewardWeights(operator, e, e + 2) == ([0, 0, 0], [0, 0, 0])
    reg.unjail(operator, sender=p.slasher)  # in the same epoch: the next epoch's value is rewritten
    assert [reg.rewardStakeAt(operator, k) for k in (e + 1, e + 2)] == [1_500 * CMP, 1_000 * CMP]
    assert reg.totalRewardStakeAt(e + 2) == 1_000 * CMP
    reg.requestUnbonding(sender=operator)
    assert (reg.rewardStakeAt(operator, e + 2), reg.totalRewardStakeAt(e + 2)) == (0, 0)


def test_jail_keeps_a_re_registration_unrewarded(protocol: Deployed, chain: Any, operator: Any) -> None:
    p, reg = protocol, protocol.registry
    register(p, operator)
    reg.requestUnbonding(sender=operator)
    reg.slash(operator, 1, EVIDENCE, sender=p.slasher)
    advance(chain, UNBONDING_DELAY + 1)
    reg.withdraw(sender=operator)
    register(p, operator)  # jailed still: bonded, but its stake is not rewardable
    e = int(p.escrow.currentEpoch())
    assert (reg.rewardStakeAt(operator, e + 1), reg.totalRewardStakeAt(e + 1)) == (0, 0)


def test_reward_weights_of_a_reversed_range_revert(protocol: Deployed, operator: Any) -> None:
    call_reverts(
        protocol.registry.OperatorRegistryInvalidRange,
        protocol.registry.rewardWeights,
        operator,
        5,
        4,
        fromEpoch=5,
        toEpoch=4,
    )

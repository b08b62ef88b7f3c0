"""Mirror of `contracts/OperatorRegistry.sol`: operators' stakes, listings, unbonding, slashing and jail, and
the rewardable stake by epoch that emission rewards follow.

Pure: the state lives in `RegistryModel`; operations that move CMP take the `ProtocolModel` holding the
balances. Every operation returns what the contract returns or raises `ModelRevert` with its custom error,
checked in the contract's order.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from enum import IntEnum

from bme.economics.model import ModelRevert, ProtocolModel

CMP = 10**18
#: This project's default: an active operator stakes at least 1,000 CMP.
DEFAULT_MIN_STAKE = 1_000 * CMP
#: Cosmos SDK's default unbonding time, which Akash uses: 21 days.
DEFAULT_UNBONDING_DELAY = 21 * 86_400
MAX_ENDPOINT_LENGTH = 256
MAX_MODELS = 32
MAX_UNBONDING_DELAY = 365 * 86_400


class OperatorStatus(IntEnum):
    """Mirror of the Solidity `OperatorStatus`."""

    NONE = 0
    BONDED = 1
    UNBONDING = 2


@dataclass
class Operator:
    """Mirror of `IOperatorRegistry.Operator`, with the listing."""

    stake: int = 0
    first_epoch: int = 0
    unbonding_ends: int = 0
    status: OperatorStatus = OperatorStatus.NONE
    jailed: bool = False
    known: bool = False
    endpoint: str = ""
    models: tuple[int, ...] = ()

    def as_tuple(self) -> tuple[int, int, int, int, bool, bool]:
        """The stored struct as `operatorOf` returns it."""
        return (self.stake, self.first_epoch, self.unbonding_ends, int(self.status), self.jailed, self.known)


@dataclass
class Trace:
    """Mirror of OpenZeppelin's `Checkpoints.Trace208`: values by key (an epoch), a later push at the same key
    replacing the value."""

    keys: list[int] = field(default_factory=list)
    values: list[int] = field(default_factory=list)

    def latest(self) -> int:
        return self.values[-1] if self.values else 0

    def push(self, key: int, value: int) -> None:
        if self.keys and self.keys[-1] == key:
            self.values[-1] = value
        else:
            self.keys.append(key)
            self.values.append(value)

    def upper_lookup(self, key: int) -> int:
        """The value of the last checkpoint keyed at most `key` (0 before the first)."""
        i = bisect_right(self.keys, key)
        return self.values[i - 1] if i else 0


@dataclass
class RegistryModel:
    """The registry's state. `address` is the contract's, which holds the stakes."""

    address: str
    min_stake: int = DEFAULT_MIN_STAKE
    unbonding_delay: int = DEFAULT_UNBONDING_DELAY
    operators: dict[str, Operator] = field(default_factory=dict)
    reward_stake: dict[str, Trace] = field(default_factory=dict)
    total_reward_stake: Trace = field(default_factory=Trace)
    slashed: dict[str, int] = field(default_factory=dict)  # one more than the epoch of the last slash

    def operator(self, address: str) -> Operator:
        return self.operators.get(address) or Operator()

    def register(
        self, proto: ProtocolModel, operator: str, stake: int, endpoint: str, models: tuple[int, ...]
    ) -> None:
        op = self.operator(operator)
        if op.status != OperatorStatus.NONE:
            raise ModelRevert("OperatorRegistryAlreadyRegistered", operator)
        if stake < self.min_stake:
            raise ModelRevert("OperatorRegistryStakeTooLow", stake, self.min_stake)
        _check_listing(endpoint, models)
        proto.transfer_cmp(operator, self.address, stake)
        if not op.known:
            op.first_epoch = proto.current_epoch
            op.known = True
        op.stake, op.status, op.endpoint, op.models = stake, OperatorStatus.BONDED, endpoint, tuple(models)
        self.operators[operator] = op
        self._write_reward_stake(proto, operator, 0 if op.jailed else stake)

    def update(self, operator: str, endpoint: str, models: tuple[int, ...]) -> None:
        op = self.operator(operator)
        if op.status != OperatorStatus.BONDED:
            raise ModelRevert("OperatorRegistryNotBonded", operator, op.status)
        _check_listing(endpoint, models)
        op.endpoint, op.models = endpoint, tuple(models)

    def request_unbonding(self, proto: ProtocolModel, operator: str) -> int:
        """Returns the time from which the stake may be withdrawn."""
        op = self.operator(operator)
        if op.status != OperatorStatus.BONDED:
            raise ModelRevert("OperatorRegistryNotBonded", operator, op.status)
        op.status = OperatorStatus.UNBONDING
        op.unbonding_ends = proto.now + self.unbonding_delay
        self._write_reward_stake(proto, operator, 0)
        return op.unbonding_ends

    def withdraw(self, proto: ProtocolModel, operator: str) -> int:
        op = self.operator(operator)
        if op.status != OperatorStatus.UNBONDING:
            raise ModelRevert("OperatorRegistryNotUnbonding", operator, op.status)
        if proto.now < op.unbonding_ends:
            raise ModelRevert("OperatorRegistryUnbondingNotOver", operator, op.unbonding_ends)
        stake = op.stake
        op.stake, op.unbonding_ends, op.status, op.endpoint, op.models = 0, 0, OperatorStatus.NONE, "", ()
        if stake:
            proto.transfer_cmp(self.address, operator, stake)
        return stake

    def slash(self, proto: ProtocolModel, operator: str, amount: int) -> int:
        if amount == 0:
            raise ModelRevert("OperatorRegistryZeroAmount")
        op = self.operator(operator)
        if op.status == OperatorStatus.NONE:
            raise ModelRevert("OperatorRegistryNotRegistered", operator)
        slashed = min(amount, op.stake)
        op.stake -= slashed
        op.jailed = True
        self.slashed[operator] = proto.current_epoch + 1
        self._write_reward_stake(proto, operator, 0)
        if slashed:
            proto.burn_cmp(self.address, slashed)
        return slashed

    def unjail(self, proto: ProtocolModel, operator: str) -> None:
        op = self.operator(operator)
        if not op.jailed:
            raise ModelRevert("OperatorRegistryNotJailed", operator)
        op.jailed = False
        if op.status == OperatorStatus.BONDED:
            self._write_reward_stake(proto, operator, op.stake)

    def _write_reward_stake(self, proto: ProtocolModel, operator: str, value: int) -> None:
        """`operator`'s rewardable stake is `value` from the next epoch on; the total moves by the change."""
        own = self.reward_stake.setdefault(operator, Trace())
        before = own.latest()
        if value == before:
            return
        key = proto.current_epoch + 1
        own.push(key, value)
        self.total_reward_stake.push(key, self.total_reward_stake.latest() + value - before)

    def reward_stake_at(self, operator: str, epoch: int) -> int:
        """Mirror of `rewardStakeAt`."""
        trace = self.reward_stake.get(operator)
        return trace.upper_lookup(epoch) if trace else 0

    def total_reward_stake_at(self, epoch: int) -> int:
        """Mirror of `totalRewardStakeAt`."""
        return self.total_reward_stake.upper_lookup(epoch)

    def slashed_through(self, operator: str) -> int:
        """Mirror of `slashedThrough`."""
        return self.slashed.get(operator, 0)

    def reward_weight(self, operator: str, epoch: int) -> int:
        """`operator`'s reward weight in `epoch`: the smaller of its rewardable stake at the epoch and at the
        next, zero for an epoch a slash forfeited."""
        if epoch < self.slashed_through(operator):
            return 0
        return min(self.reward_stake_at(operator, epoch), self.reward_stake_at(operator, epoch + 1))

    def reward_weights(self, operator: str, from_epoch: int, to_epoch: int) -> list[tuple[int, int]]:
        """Mirror of `rewardWeights`: per epoch, the operator's weight and the total rewardable stake (both 0
        for a forfeited epoch)."""
        if to_epoch < from_epoch:
            raise ModelRevert("OperatorRegistryInvalidRange", from_epoch, to_epoch)
        start = max(from_epoch, self.slashed_through(operator))
        return [
            (0, 0) if e < start else (self.reward_weight(operator, e), self.total_reward_stake_at(e))
            for e in range(from_epoch, to_epoch + 1)
        ]

    def set_min_stake(self, min_stake: int) -> None:
        if min_stake == 0:
            raise ModelRevert("OperatorRegistryZeroAmount")
        self.min_stake = min_stake

    def set_unbonding_delay(self, delay: int) -> None:
        if delay > MAX_UNBONDING_DELAY:
            raise ModelRevert("OperatorRegistryInvalidUnbondingDelay", delay)
        self.unbonding_delay = delay

    def is_active(self, operator: str) -> bool:
        op = self.operator(operator)
        return op.status == OperatorStatus.BONDED and not op.jailed and op.stake >= self.min_stake

    def first_epoch_of(self, operator: str) -> int:
        op = self.operator(operator)
        if not op.known:
            raise ModelRevert("OperatorRegistryUnknownOperator", operator)
        return op.first_epoch

    @property
    def total_staked(self) -> int:
        return sum(op.stake for op in self.operators.values())


def _check_listing(endpoint: str, models: tuple[int, ...]) -> None:
    length = len(endpoint.encode())
    if length == 0 or length > MAX_ENDPOINT_LENGTH:
        raise ModelRevert("OperatorRegistryInvalidEndpoint", length)
    if len(models) == 0 or len(models) > MAX_MODELS:
        raise ModelRevert("OperatorRegistryInvalidModels", len(models))

"""Mirror of `contracts/OperatorRegistry.sol`: operators' stakes, listings, unbonding, slashing and jail.

Pure: the state lives in `RegistryModel`; operations that move CMP take the `ProtocolModel` holding the
balances. Every operation returns what the contract returns or raises `ModelRevert` with its custom error,
checked in the contract's order.
"""

from __future__ import annotations

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
class RegistryModel:
    """The registry's state. `address` is the contract's, which holds the stakes."""

    address: str
    min_stake: int = DEFAULT_MIN_STAKE
    unbonding_delay: int = DEFAULT_UNBONDING_DELAY
    operators: dict[str, Operator] = field(default_factory=dict)

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
        if slashed:
            proto.burn_cmp(self.address, slashed)
        return slashed

    def unjail(self, operator: str) -> None:
        op = self.operator(operator)
        if not op.jailed:
            raise ModelRevert("OperatorRegistryNotJailed", operator)
        op.jailed = False

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

    def serves(self, operator: str, model_id: int) -> bool:
        """Whether `operator` lists `model_id` (the escrow reads it from `eligibility`'s bitmap)."""
        return model_id in self.operator(operator).models

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

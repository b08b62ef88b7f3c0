"""Mirror of `contracts/libraries/EmissionMath.sol` and `contracts/EmissionSchedule.sol`: the fixed,
hard-capped emission schedule, and operators' claims pro-rata to the stake they kept rewardable through each
epoch (the registry's reward weights), minted at claim through the mint window after a challenge window.

Pure: the state lives in `EmissionModel`; every operation takes the `ProtocolModel` whose token balances and
mint window it reads and changes, and the `RegistryModel` whose stake checkpoints it reads, as the contract
calls the BME core and the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bme.economics.math import ceil_div
from bme.economics.model import ModelRevert, ProtocolModel

if TYPE_CHECKING:
    from bme.economics.registry import RegistryModel

WAD = 10**18
BPS = 10_000
UINT256_MAX = 2**256 - 1
FOREVER = 2**48 - 1
MAX_SEGMENTS = 4
CMP = 10**18


@dataclass(frozen=True)
class Segment:
    """One phase of the schedule: `amount_per_epoch` for `epochs` epochs (0: forever, last only), falling by
    `decay_bps` every `decay_period` epochs of the segment."""

    epochs: int
    amount_per_epoch: int
    decay_bps: int = 0
    decay_period: int = 0

    def as_tuple(self) -> tuple[int, int, int, int]:
        """The struct as the ABI encodes it."""
        return (self.epochs, self.amount_per_epoch, self.decay_bps, self.decay_period)


#: This project's default schedule: 2,000,000 CMP per epoch for the first 365 epochs (a year of Helium's 24 h
#: epochs), then 1,000,000 CMP per epoch halving every 730 epochs (Helium halves every two years), forever.
DEFAULT_SEGMENTS: tuple[Segment, ...] = (
    Segment(365, 2_000_000 * CMP),
    Segment(0, 1_000_000 * CMP, 5_000, 730),
)
#: The immutable cap on all emission: 2.2 billion CMP, above the default schedule's bound of 2.19 billion.
DEFAULT_HARD_CAP = 2_200_000_000 * CMP
#: Helium sizes its mint circuit breaker at 5x the epoch emission.
MINT_LIMIT_EPOCHS = 5
#: The challenge window deployment sets: an epoch's rewards may be claimed once two more epochs have ended, so
#: that a slash can still reach them.
DEFAULT_CLAIM_DELAY_EPOCHS = 2
MAX_CLAIM_DELAY_EPOCHS = 365


# ---------------------------------------------------------------------- EmissionMath


def rpow_down(x: int, n: int) -> int:
    """`x` to the power `n`, both WAD, by squaring with every product rounded down."""
    z = WAD
    while n != 0:
        if n & 1:
            z = z * x // WAD
        x = x * x // WAD
        n >>= 1
    return z


def decayed_down(amount: int, decay_bps: int, periods: int) -> int:
    """`amount` after `periods` decays of `decay_bps` each, rounded down."""
    if decay_bps == 0 or periods == 0:
        return amount
    return amount * rpow_down((BPS - decay_bps) * (WAD // BPS), periods) // WAD


def segment_bound_up(amount: int, epochs: int, decay_bps: int, decay_period: int) -> int:
    """An upper bound on all a segment emits, rounded up; the uint256 maximum if endless and constant."""
    finite = UINT256_MAX if epochs == 0 else amount * epochs
    if decay_bps == 0:
        return 0 if amount == 0 else finite
    return min(ceil_div(decay_period * amount * BPS, decay_bps), finite)


def reward_down(emission: int, weight: int, total_weight: int) -> int:
    """An operator's share of an epoch's emission for its reward weight, rounded down."""
    return emission * weight // total_weight


# ---------------------------------------------------------------------- the schedule


class InvalidSchedule(ValueError):
    """The segments would make the contract's constructor revert; `name` is its custom error."""

    def __init__(self, name: str, *args: int) -> None:
        super().__init__(name, *args)
        self.name = name


@dataclass(frozen=True)
class Schedule:
    """The segments and the hard cap, checked as the constructor checks them."""

    segments: tuple[Segment, ...] = DEFAULT_SEGMENTS
    hard_cap: int = DEFAULT_HARD_CAP

    def __post_init__(self) -> None:
        n = len(self.segments)
        if n == 0 or n > MAX_SEGMENTS:
            raise InvalidSchedule("EmissionScheduleInvalidSegment", n)
        start = 0
        for i, s in enumerate(self.segments):
            endless = s.epochs == 0
            if s.decay_bps >= BPS or (s.decay_bps != 0 and s.decay_period == 0) or (endless and i != n - 1):
                raise InvalidSchedule("EmissionScheduleInvalidSegment", i)
            end = FOREVER if endless else start + s.epochs
            if end > FOREVER:
                raise InvalidSchedule("EmissionScheduleInvalidSegment", i)
            start = end
        if self.bound > self.hard_cap:
            raise InvalidSchedule("EmissionScheduleExceedsCap", self.bound, self.hard_cap)

    @property
    def bound(self) -> int:
        """Mirror of `scheduleBound`: the sum of the segments' bounds, saturating at the uint256 maximum."""
        total = 0
        for s in self.segments:
            b = segment_bound_up(s.amount_per_epoch, s.epochs, s.decay_bps, s.decay_period)
            total = UINT256_MAX if b > UINT256_MAX - total else total + b
        return total

    @property
    def max_epoch_emission(self) -> int:
        return max(s.amount_per_epoch for s in self.segments)

    @property
    def mint_limit(self) -> int:
        """The mint window's limit deployment sets: Helium's 5x the largest epoch emission."""
        return MINT_LIMIT_EPOCHS * self.max_epoch_emission

    def emission_at(self, epoch: int) -> int:
        """Mirror of `epochEmission`."""
        start = 0
        for s in self.segments:
            end = FOREVER if s.epochs == 0 else start + s.epochs
            if epoch < end:
                if s.decay_bps == 0:
                    return s.amount_per_epoch
                return decayed_down(s.amount_per_epoch, s.decay_bps, (epoch - start) // s.decay_period)
            start = end
        return 0


@dataclass
class EmissionModel:
    """The schedule contract's state: the CMP minted in all and every claimer's next epoch and total."""

    address: str
    schedule: Schedule = field(default_factory=Schedule)
    claim_delay_epochs: int = DEFAULT_CLAIM_DELAY_EPOCHS
    total_released: int = 0  # CMP minted to claimers in all (the contract's `totalReleased`)
    next_epoch: dict[str, int] = field(default_factory=dict)
    claimed: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.claim_delay_epochs > MAX_CLAIM_DELAY_EPOCHS:
            raise InvalidSchedule("EmissionScheduleInvalidClaimDelay", self.claim_delay_epochs)

    def claim(self, proto: ProtocolModel, registry: RegistryModel, operator: str) -> int:
        """Mirror of `claim`: all unclaimed epochs past the challenge window."""
        current = proto.current_epoch
        if current <= self.claim_delay_epochs:
            raise ModelRevert("EmissionScheduleInChallengeWindow", 0, self.claim_delay_epochs + 1)
        return self._claim(proto, registry, operator, current - 1 - self.claim_delay_epochs)

    def claim_through(
        self, proto: ProtocolModel, registry: RegistryModel, operator: str, to_epoch: int
    ) -> int:
        """Mirror of `claimThrough`: returns the CMP minted to the operator."""
        return self._claim(proto, registry, operator, to_epoch)

    def _claim(self, proto: ProtocolModel, registry: RegistryModel, operator: str, to_epoch: int) -> int:
        current = proto.current_epoch
        if to_epoch >= current:
            raise ModelRevert("EmissionScheduleEpochNotEnded", to_epoch, current)
        claimable_at = to_epoch + self.claim_delay_epochs + 1
        if claimable_at > current:
            raise ModelRevert("EmissionScheduleInChallengeWindow", to_epoch, claimable_at)
        nxt = self.next_epoch.get(operator, 0)
        start = nxt if nxt != 0 else registry.first_epoch_of(operator)
        if to_epoch < start:
            if nxt != 0:
                raise ModelRevert("EmissionScheduleAlreadyClaimed", operator, to_epoch, start)
            raise ModelRevert("EmissionScheduleNothingToClaim", operator, start, to_epoch)
        tokens = self.rewards(registry, operator, start, to_epoch)
        if tokens == 0:
            raise ModelRevert("EmissionScheduleNothingToClaim", operator, start, to_epoch)
        total = self.total_released + tokens
        if total > self.schedule.hard_cap:
            raise ModelRevert("EmissionScheduleExceedsCap", total, self.schedule.hard_cap)
        window = proto.check_mint_emission(tokens)
        self.total_released = total
        self.next_epoch[operator] = to_epoch + 1
        self.claimed[operator] = self.claimed.get(operator, 0) + tokens
        proto.mint_emission(operator, tokens, window)
        return tokens

    def rewards(self, registry: RegistryModel, operator: str, start: int, to_epoch: int) -> int:
        """`operator`'s rewards for epochs `start` to `to_epoch` inclusive: each epoch's emission times its
        reward weight over the epoch's total rewardable stake, rounded down."""
        total = 0
        for e, (weight, stake) in enumerate(registry.reward_weights(operator, start, to_epoch), start):
            if weight:
                total += reward_down(self.schedule.emission_at(e), weight, stake)
        return total

    def pending(self, proto: ProtocolModel, registry: RegistryModel, operator: str) -> tuple[int, int, int]:
        """Mirror of `pendingRewards`."""
        current = proto.current_epoch
        nxt = self.next_epoch.get(operator, 0)
        start = nxt if nxt != 0 else registry.first_epoch_of(operator)
        if start + self.claim_delay_epochs + 1 > current:
            return start, start, 0
        end = current - 1 - self.claim_delay_epochs
        return start, end, self.rewards(registry, operator, start, end)

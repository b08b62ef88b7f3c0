"""Mirror of `contracts/libraries/EmissionMath.sol` and `contracts/EmissionSchedule.sol`: the fixed,
hard-capped emission schedule, the release of finished epochs through the mint window, and operators' pro-rata
claims.

Pure: the state lives in `EmissionModel`; every operation takes the `ProtocolModel` whose token balances, mint
window and escrow work records it reads and changes, as the contract calls the BME core, CMP and the escrow.
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


def reward_down(emission: int, work: int, total_work: int) -> int:
    """An operator's share of an epoch's emission, rounded down."""
    return emission * work // total_work


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
    """The schedule contract's state: the release cursor and every claimer's next epoch and total."""

    address: str
    schedule: Schedule = field(default_factory=Schedule)
    released_through: int = 0
    total_released: int = 0
    next_epoch: dict[str, int] = field(default_factory=dict)
    claimed: dict[str, int] = field(default_factory=dict)

    def release(self, proto: ProtocolModel, max_epochs: int) -> int:
        """Mirror of `release`: returns the CMP minted to the schedule."""
        current = proto.current_epoch
        target = min(current, self.released_through + max_epochs)
        if target <= self.released_through:
            raise ModelRevert("EmissionScheduleNothingToRelease", self.released_through)
        return self._release(proto, target, commit=True)

    def _release(self, proto: ProtocolModel, target: int, *, commit: bool) -> int:
        """The emission of epochs up to `target` (exclusive); minted when `commit`, else only checked."""
        tokens = sum(
            self.schedule.emission_at(e)
            for e in range(self.released_through, target)
            if proto.epoch_work.get(e, 0) != 0
        )
        total = self.total_released + tokens
        if total > self.schedule.hard_cap:
            raise ModelRevert("EmissionScheduleExceedsCap", total, self.schedule.hard_cap)
        if tokens != 0:
            window = proto.check_mint_emission(tokens)
            if not commit:
                return tokens
            proto.mint_emission(self.address, tokens, window)
        if not commit:
            return tokens
        self.released_through = target
        self.total_released = total
        return tokens

    def claim(self, proto: ProtocolModel, registry: RegistryModel, operator: str) -> int:
        """Mirror of `claim`: all finished unclaimed epochs."""
        current = proto.current_epoch
        if current == 0:
            raise ModelRevert("EmissionScheduleEpochNotEnded", 0, 0)
        return self.claim_through(proto, registry, operator, current - 1)

    def claim_through(
        self, proto: ProtocolModel, registry: RegistryModel, operator: str, to_epoch: int
    ) -> int:
        """Mirror of `claimThrough`: returns the CMP transferred to the operator."""
        current = proto.current_epoch
        if to_epoch >= current:
            raise ModelRevert("EmissionScheduleEpochNotEnded", to_epoch, current)
        nxt = self.next_epoch.get(operator, 0)
        start = nxt if nxt != 0 else registry.first_epoch_of(operator)
        if to_epoch < start:
            if nxt != 0:
                raise ModelRevert("EmissionScheduleAlreadyClaimed", operator, to_epoch, start)
            raise ModelRevert("EmissionScheduleNothingToClaim", operator, start, to_epoch)
        tokens = self.rewards(proto, operator, start, to_epoch)
        if to_epoch >= self.released_through:
            # The contract releases first: its errors precede a claim of nothing, which undoes the release.
            self._release(proto, to_epoch + 1, commit=tokens != 0)
        if tokens == 0:
            raise ModelRevert("EmissionScheduleNothingToClaim", operator, start, to_epoch)
        self.next_epoch[operator] = to_epoch + 1
        self.claimed[operator] = self.claimed.get(operator, 0) + tokens
        proto.transfer_cmp(self.address, operator, tokens)
        return tokens

    def rewards(self, proto: ProtocolModel, operator: str, start: int, to_epoch: int) -> int:
        """`operator`'s rewards for epochs `start` to `to_epoch` inclusive."""
        total = 0
        for e in range(start, to_epoch + 1):
            work = proto.work.get((operator, e), 0)
            if work:
                total += reward_down(self.schedule.emission_at(e), work, proto.epoch_work[e])
        return total

    def pending(self, proto: ProtocolModel, registry: RegistryModel, operator: str) -> tuple[int, int, int]:
        """Mirror of `pendingRewards`."""
        current = proto.current_epoch
        nxt = self.next_epoch.get(operator, 0)
        start = nxt if nxt != 0 else registry.first_epoch_of(operator)
        if current == 0 or start >= current:
            return start, start, 0
        return start, current - 1, self.rewards(proto, operator, start, current - 1)

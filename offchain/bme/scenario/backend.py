"""What the driver needs from a replay's world, the reference model or a devnet: run a block of actions at a
given time and report which succeeded, and read the protocol's state."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

from bme.economics.emission import Schedule
from bme.economics.oracle import DEFAULT_MAX_AGE, DEFAULT_MAX_STEP_BPS, DEFAULT_STEP_PERIOD
from bme.economics.params import Parameters
from bme.scenario.actions import Action
from bme.scenario.spec import Scenario
from bme.scenario.timeline import Timeline
from bme.scenario.units import scaled


@dataclass(frozen=True)
class ProtocolConfig:
    """What a replay deploys: every parameter in base units."""

    epoch_length: int
    parameters: Parameters
    seed_tokens: int
    mint_limit: int
    max_job_duration: int
    min_stake: int
    schedule: Schedule
    models: tuple[tuple[int, str, int, int], ...]  # id, name, CRD units per million input / output tokens
    treasury_supply: int
    oracle_max_age: int = DEFAULT_MAX_AGE  # the manual oracle's settings
    oracle_max_step_bps: int = DEFAULT_MAX_STEP_BPS
    oracle_step_period: int = DEFAULT_STEP_PERIOD

    @classmethod
    def of(cls, s: Scenario) -> ProtocolConfig:
        p = s.protocol
        supply = sum(g.users * scaled(g.cmp_per_user, 18, "cmp_per_user") for g in s.demand.groups)
        supply += sum(o.count * scaled(o.stake, 18, "stake") for o in s.operators)
        supply += sum(o.count * scaled(o.wash.cmp, 18, "wash.cmp") for o in s.operators if o.wash is not None)
        return cls(
            epoch_length=s.epoch_length,
            parameters=p.parameters(),
            seed_tokens=p.seed_units(),
            mint_limit=p.mint_limit_units(),
            max_job_duration=p.max_job_duration,
            min_stake=p.min_stake_units(),
            schedule=p.emission.schedule(),
            models=tuple((m.id, m.name, *m.prices()) for m in s.models),
            treasury_supply=supply,
            oracle_max_age=p.oracle_max_age,
            oracle_max_step_bps=p.oracle_max_step_bps,
            oracle_step_period=p.oracle_step_period,
        )


@dataclass(frozen=True, slots=True)
class OracleReading:
    """The oracle's last reading, as `latestPrice` returns it."""

    price: int
    confidence: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class ProtocolState:
    """The state read after an epoch: totals of the BME core, CMP, CRD, the escrow's work in the epoch, the
    emission schedule, and per operator (in the order given) its earnings, claimed rewards and CMP."""

    cmp_supply: int
    crd_supply: int
    remint_credits: int
    outstanding_credits: int
    total_reissued: int
    total_new_issuance: int
    seed_tokens: int
    status: int
    oracle: OracleReading
    emission_released: int
    epoch_work: int
    epoch_emission: int
    reward_stake: int  # the registry's total rewardable stake in the epoch: its emission's denominator
    staked: int
    unclaimed_emission: int
    treasury_cmp: int
    earnings: tuple[int, ...]
    rewards_claimed: tuple[int, ...]
    operator_cmp: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WalletView:
    """The oracle's reading, each user's CMP and CRD balances, and each operator's unredeemed earnings."""

    oracle: OracleReading
    balances: tuple[tuple[int, int], ...]
    earnings: tuple[int, ...]


class Backend(ABC):
    """A world to replay in. `execute` runs a block: all actions at one time, in order."""

    timeline: Timeline
    transactions: int = 0
    gas_used: int = 0

    @abstractmethod
    def execute(self, timestamp: int, actions: Sequence[Action]) -> list[bool]:
        """Runs `actions` in one block at `timestamp`; True for each that succeeded, False for a revert."""

    @abstractmethod
    def read_state(self, chain_epoch: int, operators: Sequence[str]) -> ProtocolState:
        """The state now; `chain_epoch` is the escrow epoch whose work and emission to report."""

    @abstractmethod
    def wallets(self, users: Sequence[str], operators: Sequence[str]) -> WalletView:
        """What wallets see before a block: the oracle, users' balances and operators' earnings."""

    def close(self) -> None:  # noqa: B027 (optional: only a devnet has something to release)
        """Releases the world (stops a devnet)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

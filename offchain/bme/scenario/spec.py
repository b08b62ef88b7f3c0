"""Scenario files: the schema (pydantic models) and the checks across sections.

Every mistake is reported with its place in the file and what was expected: an unknown key, a wrong type, an
out-of-range value, a price path that reaches zero or goes negative, a missing CSV column, a parameter set the
contracts would refuse (`loading` turns them into messages). See `scenarios/README.md` for the format.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, Strict, ValidationInfo, field_validator, model_validator

from bme.economics.emission import DEFAULT_HARD_CAP, InvalidSchedule, Schedule, Segment
from bme.economics.oracle import DEFAULT_MAX_AGE, DEFAULT_MAX_STEP_BPS, DEFAULT_STEP_PERIOD, MAX_STEP_BPS
from bme.economics.params import DEFAULT_MIN_JOB_DURATION, MAX_MINT_LIMIT_PER_WINDOW, Parameters
from bme.economics.registry import DEFAULT_MIN_STAKE, MAX_MODELS
from bme.scenario.fieldtypes import (
    Amount,
    Bps,
    Count,
    Dollars,
    Duration,
    Int,
    MintLimit,
    Model,
    NonNegativeNumber,
    Number,
    PositiveInt,
    PositiveNumber,
    RatioBps,
)
from bme.scenario.price_csv import read_price_csv
from bme.scenario.timeline import GENESIS_TIME
from bme.scenario.units import CMP, scaled

UINT32_MAX = 2**32 - 1
MIN_EPOCH_LENGTH, MAX_EPOCH_LENGTH = 65, 93_600  # Akash AEP-79, as JobEscrow checks
MAX_ACCOUNTS = 5_000  # users and operators together: each is a funded devnet account
MAX_MODEL_LISTINGS = 16  # the deployment lists each in its own block: they must fit in epoch 0
MAX_SETTLE_BATCH = 200  # keeps a batch's gas under EIP-7825's 16.7 million per transaction


# ------------------------------------------------------------------------------------------ price


class Shock(Model):
    """At `at` (time from the start), the price is multiplied by `factor` and the path goes on from there."""

    at: Duration
    factor: PositiveNumber


class Outage(Model):
    """From `start` to `end` the feeder pushes no price: the oracle goes stale."""

    start: Duration
    end: Duration

    @model_validator(mode="after")
    def _ordered(self) -> Outage:
        if self.end <= self.start:
            raise ValueError(f"an outage must end after it starts ({self.start} s to {self.end} s)")
        return self


class _PriceBase(Model):
    confidence_bps: Bps = 0
    shocks: list[Shock] = Field(default_factory=list)
    outages: list[Outage] = Field(default_factory=list)


class ConstantPrice(_PriceBase):
    """A constant price (US dollars per CMP), moved only by shocks."""

    kind: Literal["constant"]
    initial: PositiveNumber


class PricePoint(Model):
    at: Duration
    price: Number


class PointsPrice(_PriceBase):
    """A piecewise-linear path through `points` (time from the start, price), flat after the last point."""

    kind: Literal["points"]
    points: list[PricePoint] = Field(min_length=1)

    @field_validator("points")
    @classmethod
    def _valid_points(cls, points: list[PricePoint]) -> list[PricePoint]:
        if points[0].at != 0:
            raise ValueError("the first point must be at 0 (the start)")
        for i, p in enumerate(points):
            if p.price <= 0:
                raise ValueError(f"point {i}: the price path goes to {p.price}: prices must be positive")
            if i and p.at <= points[i - 1].at:
                raise ValueError(f"point {i}: times must increase ({p.at} s after {points[i - 1].at} s)")
        return points


class GbmPrice(_PriceBase):
    """Geometric Brownian motion from `initial`, with annual `drift` and `volatility` (of the log price),
    sampled once per epoch from the scenario's seed."""

    kind: Literal["gbm"]
    initial: PositiveNumber
    drift: Number = 0.0
    volatility: NonNegativeNumber = 0.0


class CsvPrice(_PriceBase):
    """A recorded series: a CSV file (relative to the scenario file) with a time column (unix seconds or ISO
    8601 dates) and a price column; the first row is the scenario's start, and each epoch takes the last price
    at or before its time."""

    kind: Literal["csv"]
    file: str
    time_column: str = "timestamp"
    price_column: str = "price"
    _series: tuple[tuple[int, ...], tuple[float, ...]] = PrivateAttr(default=((), ()))

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> CsvPrice:
        base = Path((info.context or {}).get("base_dir", "."))
        path = Path(self.file) if Path(self.file).is_absolute() else base / self.file
        self._series = read_price_csv(path, self.time_column, self.price_column)
        return self

    @property
    def series(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """Seconds from the first row, and the prices."""
        return self._series


PriceSpec = Annotated[
    ConstantPrice | PointsPrice | GbmPrice | CsvPrice,
    Field(discriminator="kind"),
]


# ------------------------------------------------------------------------------------------ demand


class GrowthStep(Model):
    """From `at` on, demand is multiplied by `factor` (steps compound)."""

    at: Duration
    factor: PositiveNumber


class TokenRange(Model):
    """Inclusive bounds of a token count, drawn uniformly per job."""

    min: PositiveInt
    max: PositiveInt

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError(f"expected [min, max], got {len(value)} values")
            return {"min": value[0], "max": value[1]}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TokenRange:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        if self.max > UINT32_MAX:
            raise ValueError(f"a job's token count must fit 32 bits ({self.max} given)")
        return self


class UserGroup(Model):
    """Users who behave alike: `jobs_per_epoch` is the group's mean (jobs are Poisson per epoch), spread
    uniformly over its users; each job picks a model by weight and token counts in the ranges."""

    name: str
    users: PositiveInt
    jobs_per_epoch: NonNegativeNumber
    models: dict[Int, PositiveNumber] = Field(min_length=1)
    input_tokens: TokenRange
    output_tokens: TokenRange
    cmp_per_user: Amount
    topup_credits: Dollars = Decimal(25)


class DemandSpec(Model):
    """Jobs per epoch: each group's mean times the growth steps, times `(1 + trend_per_year)` per year,
    times `(price / reference_price) ** elasticity` (negative: demand falls as the token gets dearer)."""

    groups: list[UserGroup] = Field(min_length=1)
    elasticity: Number = 0.0
    reference_price: PositiveNumber | None = None
    trend_per_year: Number = 0.0
    growth: list[GrowthStep] = Field(default_factory=list)

    @field_validator("trend_per_year")
    @classmethod
    def _trend(cls, value: float) -> float:
        if value <= -1:
            raise ValueError(f"a yearly trend must be above -1 (-100 %), {value} given")
        return value


# ------------------------------------------------------------------------------------------ participants


class ModelListing(Model):
    """A model in the price book; prices in US dollars per million tokens."""

    id: Annotated[int, Strict(), Field(ge=1, le=65_535)]
    name: str = Field(min_length=1)
    input_price: Dollars
    output_price: Dollars

    def prices(self) -> tuple[int, int]:
        """CRD base units per million input and output tokens."""
        return (
            scaled(self.input_price, 6, f"model {self.id}'s input price"),
            scaled(self.output_price, 6, f"model {self.id}'s output price"),
        )


class WashSpec(Model):
    """A wash trader: each epoch the operator burns CMP for `usd_per_epoch` dollars of jobs that it pays for
    itself and answers itself (the worst case: every one of them is handed to it), charging each job its whole
    reservation; it starts with `cmp` CMP beside its stake for the burns. `usd_per_epoch: 0` makes an idle
    staker, the control its return is compared with."""

    usd_per_epoch: Dollars
    cmp: Amount = Decimal(0)


class OperatorGroup(Model):
    """Operators that behave alike: each stakes `stake` CMP, serves up to `capacity` jobs per epoch from epoch
    `join_epoch` on, redeems `redeem_share` of its earnings every `redeem_every` epochs and claims its
    emission rewards every `claim_every` epochs. With `wash`, each also pays for jobs it serves itself."""

    name: str
    count: PositiveInt
    stake: Amount
    capacity: Count
    models: list[Int] | None = None
    join_epoch: Count = 0
    redeem_every: PositiveInt = 1
    redeem_share: PositiveNumber = 1.0
    claim_every: PositiveInt = 1
    wash: WashSpec | None = None

    @field_validator("redeem_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if value > 1:
            raise ValueError(f"a share must be at most 1 ({value} given)")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not 1 <= len(value) <= MAX_MODELS:
            raise ValueError(f"an operator serves 1 to {MAX_MODELS} models ({len(value)} given)")
        return value


# ------------------------------------------------------------------------------------------ protocol


class SegmentSpec(Model):
    """An emission segment: `amount_per_epoch` CMP for `epochs` epochs (0: forever, last only), falling by
    `decay_bps` every `decay_period` epochs."""

    epochs: Count
    amount_per_epoch: Amount
    decay_bps: Annotated[int, Strict(), Field(ge=0, le=9_999)] = 0
    decay_period: Count = 0

    def segment(self) -> Segment:
        return Segment(
            self.epochs,
            scaled(self.amount_per_epoch, 18, "an emission amount"),
            self.decay_bps,
            self.decay_period,
        )


class EmissionSpec(Model):
    hard_cap: Amount = Decimal(DEFAULT_HARD_CAP // CMP)
    segments: list[SegmentSpec] = Field(
        default_factory=lambda: [
            SegmentSpec(epochs=365, amount_per_epoch=Decimal(2_000_000)),
            SegmentSpec(epochs=0, amount_per_epoch=Decimal(1_000_000), decay_bps=5_000, decay_period=730),
        ]
    )

    def schedule(self) -> Schedule:
        """The schedule as the contract's constructor checks it."""
        try:
            return Schedule(tuple(s.segment() for s in self.segments), scaled(self.hard_cap, 18, "hard_cap"))
        except InvalidSchedule as exc:
            if exc.name == "EmissionScheduleExceedsCap":
                raise ValueError(
                    f"the segments could emit {exc.args[1] / CMP:,.0f} CMP, above the hard cap of "
                    f"{exc.args[2] / CMP:,.0f} CMP"
                ) from None
            raise ValueError(
                f"segment {exc.args[1]} is malformed (1 to 4 segments; only the last may be endless; "
                "a decay needs a decay_period)"
            ) from None


class NetEmissionsSpec(Model):
    """Helium-style net emissions (re-minting a smoothed share of recent burns, capped per epoch). Accepted in
    files for forward compatibility, but the contracts do not implement them: enabling them is an error."""

    enabled: bool = False
    smoothing_epochs: PositiveInt = 30
    cap_per_epoch: Amount = Decimal(0)

    @model_validator(mode="after")
    def _not_on_chain(self) -> NetEmissionsSpec:
        if self.enabled:
            raise ValueError(
                "net emissions are not implemented by the contracts (EmissionSchedule mints a fixed "
                "schedule only), so a replay could not run them on-chain: set enabled: false"
            )
        return self


class ProtocolSpec(Model):
    """Every protocol parameter; defaults are the contracts' (see `contracts/libraries/BmeParameters.sol`).

    `oracle_max_age`, `oracle_max_step_bps` and `oracle_step_period` are the manual oracle's settings (its
    constructor's), not the BME core's: how long a pushed price stays usable, how far one push may move it (0:
    no bound), and the time a full step needs (0: none). A price path that moves further in one epoch is
    pushed as several bounded steps, a step period (at least a second) apart, as a bounded feeder walks the
    price to the market."""

    mint_spread_bps: Bps = 25
    settle_spread_bps: Bps = 0
    cr_warn_bps: RatioBps = 9_500
    cr_halt_bps: RatioBps = 9_000
    cr_hysteresis_bps: Bps = 100
    oracle_max_confidence_bps: Bps = 150
    confidence_multiplier: Annotated[int, Strict(), Field(ge=0, le=10)] = 2
    oracle_max_age: Duration = DEFAULT_MAX_AGE
    oracle_max_step_bps: Annotated[int, Strict(), Field(ge=0, le=MAX_STEP_BPS)] = DEFAULT_MAX_STEP_BPS
    oracle_step_period: Duration = DEFAULT_STEP_PERIOD
    mint_window: Duration = 86_400
    min_mint_credits: Dollars = Decimal(10)
    mint_limit: MintLimit = "auto"
    seed_tokens: Amount = Decimal(0)
    max_job_duration: Duration = 86_400
    #: The shortest time from a job's opening to its deadline; none: the escrow's default (600 s), or the
    #: relayer's job_ttl when that is shorter (short epochs).
    min_job_duration: Duration | None = None
    min_stake: Amount = Decimal(DEFAULT_MIN_STAKE // CMP)
    emission: EmissionSpec = Field(default_factory=EmissionSpec)
    net_emissions: NetEmissionsSpec = Field(default_factory=NetEmissionsSpec)

    @model_validator(mode="after")
    def _contracts_accept(self) -> ProtocolSpec:
        p = self.parameters()
        rules = [
            (p.mint_spread_bps < 5_000, "mint_spread_bps must be below 5000"),
            (p.settle_spread_bps < 5_000, "settle_spread_bps must be below 5000"),
            (p.cr_halt_bps < p.cr_warn_bps, "cr_halt_bps must be below cr_warn_bps"),
            (p.cr_hysteresis_bps <= 2_000, "cr_hysteresis_bps must be at most 2000"),
            (0 < self.oracle_max_age <= UINT32_MAX, "oracle_max_age must be 1 s to 2^32 - 1 s"),
            (0 <= self.oracle_step_period <= UINT32_MAX, "oracle_step_period must be 0 s to 2^32 - 1 s"),
            (0 < p.mint_window <= UINT32_MAX, "mint_window must be 1 s to 2^32 - 1 s"),
            (0 < p.min_mint_credits < 2**64, "min_mint_credits must be positive and fit 64 bits"),
        ]
        broken = [why for ok, why in rules if not ok]
        if broken:
            raise ValueError("the BME core or its oracle would refuse these parameters: " + "; ".join(broken))
        if self.max_job_duration <= 0 or self.max_job_duration > UINT32_MAX:
            raise ValueError("max_job_duration must be between 1 s and 2^32 - 1 s")
        if self.min_job_duration is not None and not 0 < self.min_job_duration < self.max_job_duration:
            raise ValueError("min_job_duration must be at least 1 s and below max_job_duration")
        if self.seed_units() >= 2**88:
            raise ValueError("seed_tokens must be below 2^88 base units (309 million CMP)")
        if self.mint_limit_units() > MAX_MINT_LIMIT_PER_WINDOW:
            raise ValueError("mint_limit must be at most 100,000,000 CMP (the contracts' hard maximum)")
        if self.min_stake_units() == 0:
            raise ValueError("min_stake must be positive")
        self.emission.schedule()
        return self

    def parameters(self) -> Parameters:
        """The BME core's parameter struct."""
        return Parameters(
            mint_spread_bps=self.mint_spread_bps,
            settle_spread_bps=self.settle_spread_bps,
            cr_warn_bps=self.cr_warn_bps,
            cr_halt_bps=self.cr_halt_bps,
            cr_hysteresis_bps=self.cr_hysteresis_bps,
            oracle_max_confidence_bps=self.oracle_max_confidence_bps,
            confidence_multiplier=self.confidence_multiplier,
            mint_window=self.mint_window,
            min_mint_credits=scaled(self.min_mint_credits, 6, "min_mint_credits"),
        )

    def mint_limit_units(self) -> int:
        """CMP base units redemptions and emission claims may mint per window ("auto": 5x the largest
        emission)."""
        if self.mint_limit == "auto":
            return self.emission.schedule().mint_limit
        return scaled(self.mint_limit, 18, "mint_limit")

    def seed_units(self) -> int:
        return scaled(self.seed_tokens, 18, "seed_tokens")

    def min_stake_units(self) -> int:
        return scaled(self.min_stake, 18, "min_stake")


class RelayerSpec(Model):
    """How the relayer settles: jobs per settlement transaction, and how long a job may wait (job_ttl, default
    the shorter of max_job_duration and half an epoch) before its payer may expire it."""

    settle_batch: Annotated[int, Strict(), Field(ge=1, le=MAX_SETTLE_BATCH)] = 100
    job_ttl: Duration | None = None


# ------------------------------------------------------------------------------------------ the scenario


class Scenario(Model):
    """A scenario file."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: Count = 0
    duration: Duration
    epoch_length: Duration = 86_400
    price: PriceSpec
    demand: DemandSpec
    models: list[ModelListing] = Field(min_length=1, max_length=MAX_MODEL_LISTINGS)
    operators: list[OperatorGroup] = Field(min_length=1)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    relayer: RelayerSpec = Field(default_factory=RelayerSpec)
    sweep: dict[str, list[Any]] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        L = self.epoch_length
        if not MIN_EPOCH_LENGTH <= L <= MAX_EPOCH_LENGTH:
            raise ValueError(f"epoch_length must be 65 s to 93,600 s (Akash AEP-79), {L} s given")
        if self.duration < L or self.duration % L:
            raise ValueError(
                f"duration ({self.duration} s) must be a positive whole number of epochs of {L} s"
            )
        if GENESIS_TIME + self.duration + 2 * L + self.protocol.max_job_duration > UINT32_MAX:
            raise ValueError("the scenario is too long: job deadlines are 32-bit times (until 2106)")
        ids = [m.id for m in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique ({ids})")
        for g in self.demand.groups:
            unknown = sorted(set(g.models) - set(ids))
            if unknown:
                raise ValueError(f"demand group {g.name!r} uses models {unknown} not listed in models")
        for o in self.operators:
            unknown = sorted(set(o.models or ()) - set(ids))
            if unknown:
                raise ValueError(f"operator group {o.name!r} serves models {unknown} not listed in models")
            if scaled(o.stake, 18, "a stake") < self.protocol.min_stake_units():
                raise ValueError(
                    f"operator group {o.name!r} stakes {o.stake} CMP, below min_stake "
                    f"({self.protocol.min_stake} CMP)"
                )
            if o.join_epoch >= self.epochs:
                raise ValueError(f"operator group {o.name!r} joins at epoch {o.join_epoch}, after the end")
            if (
                o.wash is not None
                and o.wash.usd_per_epoch
                and o.wash.usd_per_epoch < self.protocol.min_mint_credits
            ):
                raise ValueError(
                    f"operator group {o.name!r} washes {o.wash.usd_per_epoch} dollars per epoch, below "
                    f"min_mint_credits ({self.protocol.min_mint_credits} dollars), the least a burn buys"
                )
        accounts = sum(g.users for g in self.demand.groups) + sum(o.count for o in self.operators)
        if accounts > MAX_ACCOUNTS:
            raise ValueError(f"{accounts} users and operators: at most {MAX_ACCOUNTS} are supported")
        if self.min_job_duration < 1:
            raise ValueError("max_job_duration must be at least 2 s: a job's shortest duration is below it")
        ttl = self.job_ttl
        if not self.min_job_duration <= ttl <= self.protocol.max_job_duration:
            raise ValueError(
                f"relayer.job_ttl must be min_job_duration ({self.min_job_duration} s) to max_job_duration, "
                f"{ttl} s given"
            )
        if ttl > L - 3:
            raise ValueError(
                f"relayer.job_ttl ({ttl} s) must be at most the epoch length less 3 s ({L - 3} s), so that "
                "an unserved job can be expired in the next epoch"
            )
        self._check_times()
        return self

    def _check_times(self) -> None:
        end = self.duration
        timed: list[tuple[str, int]] = [
            (f"price.shocks.{i}.at", s.at) for i, s in enumerate(self.price.shocks)
        ]
        timed += [(f"price.outages.{i}.start", o.start) for i, o in enumerate(self.price.outages)]
        timed += [(f"demand.growth.{i}.at", g.at) for i, g in enumerate(self.demand.growth)]
        for where, at in timed:
            if at >= end:
                raise ValueError(f"{where} ({at} s) is not before the scenario's end ({end} s)")
        if isinstance(self.price, CsvPrice):
            offsets = self.price.series[0]
            covered = offsets[-1] if offsets else 0
            last_push = end - self.epoch_length
            if covered < last_push:
                raise ValueError(
                    f"the price series in {self.price.file} covers {covered} s, less than the "
                    f"{last_push} s the scenario needs (its last epoch's start)"
                )

    # -- derived values -----------------------------------------------------------------------------

    @property
    def epochs(self) -> int:
        return self.duration // self.epoch_length

    @property
    def job_ttl(self) -> int:
        if self.relayer.job_ttl is not None:
            return self.relayer.job_ttl
        return min(self.protocol.max_job_duration, self.epoch_length // 2)

    @property
    def min_job_duration(self) -> int:
        """The escrow's shortest job duration in this scenario (see `ProtocolSpec.min_job_duration`)."""
        if self.protocol.min_job_duration is not None:
            return self.protocol.min_job_duration
        return min(DEFAULT_MIN_JOB_DURATION, self.job_ttl, self.protocol.max_job_duration - 1)

    def model_prices(self) -> dict[int, tuple[int, int]]:
        """Each model's price book entry: CRD base units per million input and output tokens."""
        return {m.id: m.prices() for m in self.models}


def share_fraction(value: float) -> Fraction:
    """A share written as a decimal, as an exact fraction of its written form."""
    return Fraction(Decimal(repr(value)))

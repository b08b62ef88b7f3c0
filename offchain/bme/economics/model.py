"""The reference model: the whole protocol's state and operations as plain Python, mirroring the contracts.

Every operation either returns what the contract returns or raises `ModelRevert` with the name of the custom
error the contract reverts with, checked in the same order, so a test can drive the chain and the model with
the same calls and compare outcomes and state exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from bme.economics import math as m
from bme.economics.jobs import JobStatus, job_id_for
from bme.economics.oracle import (
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_STEP_BPS,
    DEFAULT_STEP_PERIOD,
    allowed_step_bps,
    is_fresh,
    step_within,
)
from bme.economics.params import (
    DEFAULT_MAX_JOB_DURATION,
    DEFAULT_MIN_JOB_DURATION,
    MAX_JOB_CREDITS,
    MAX_MINT_LIMIT_PER_WINDOW,
    MAX_PAUSE,
    MINT_LIMIT_PER_WINDOW,
    PAUSE_COOLDOWN,
    Parameters,
)
from bme.economics.status import Status, next_status
from bme.economics.window import WindowState, consume


class ModelRevert(Exception):
    """The operation would revert on-chain with custom error `name`."""

    def __init__(self, name: str, *args: object) -> None:
        super().__init__(name, *args)
        self.name = name


@dataclass(frozen=True, slots=True)
class JobTerms:
    """Mirror of `IJobEscrow.JobTerms`: what a payer commits to when it opens a job."""

    model_id: int
    spec_hash: bytes
    deadline: int
    max_input_tokens: int
    max_output_tokens: int

    def as_tuple(self) -> tuple[int, bytes, int, int, int]:
        """The struct as the escrow's ABI takes it."""
        return (self.model_id, self.spec_hash, self.deadline, self.max_input_tokens, self.max_output_tokens)


@dataclass
class Job:
    """A job's stored state."""

    payer: str
    model_id: int
    deadline: int
    max_credits: int
    status: JobStatus = JobStatus.OPEN
    max_input_tokens: int = 0
    max_output_tokens: int = 0


class OperatorView(Protocol):
    """What the escrow asks the operator registry before it pays an operator (`eligibility`)."""

    def is_active(self, operator: str) -> bool: ...

    def serves(self, operator: str, model_id: int) -> bool: ...


@dataclass
class Settlement:
    """One job's settlement, as the relayer submits it."""

    job_id: int
    operator: str
    input_tokens: int
    output_tokens: int
    result_hash: bytes = b"\x00" * 32


@dataclass
class Oracle:
    """The manual oracle: its settings (fixed at construction) and its last reading."""

    price: int = 0
    confidence: int = 0
    updated_at: int = 0
    max_age: int = DEFAULT_MAX_AGE
    max_step_bps: int = DEFAULT_MAX_STEP_BPS
    step_period: int = DEFAULT_STEP_PERIOD


@dataclass
class ProtocolModel:
    """The protocol's state. Addresses are checksummed strings; amounts are integers in base units."""

    now: int
    window_start: int
    epoch_genesis: int = 0
    epoch_length: int = 86_400
    params: Parameters = field(default_factory=Parameters)
    oracle: Oracle = field(default_factory=Oracle)
    seed_tokens: int = 0
    mint_limit: int = MINT_LIMIT_PER_WINDOW
    emission_limit: int = MINT_LIMIT_PER_WINDOW
    max_job_duration: int = DEFAULT_MAX_JOB_DURATION
    min_job_duration: int = DEFAULT_MIN_JOB_DURATION
    #: The BME core's pause: it ends by itself at `paused_until` (`ExpiringPausable`).
    paused_until: int = 0
    next_pause_at: int = 0
    #: The collateral status (never HALT_ORACLE) and, beside it, whether `syncStatus` last found the oracle
    #: failing.
    cr_status: Status = Status.HEALTHY
    oracle_halted: bool = False
    remint_credits: int = 0
    outstanding_credits: int = 0
    total_new_issuance: int = 0
    total_reissued: int = 0
    cmp: dict[str, int] = field(default_factory=dict)
    crd: dict[str, int] = field(default_factory=dict)
    earnings: dict[str, int] = field(default_factory=dict)
    work: dict[tuple[str, int], int] = field(default_factory=dict)
    epoch_work: dict[int, int] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    models: dict[int, tuple[int, int, bool]] = field(default_factory=dict)
    cmp_minted: int = 0
    cmp_burned: int = 0
    window: WindowState = field(init=False)
    emission_window: WindowState = field(init=False)

    def __post_init__(self) -> None:
        self.window = WindowState(start=self.window_start)
        self.emission_window = WindowState(start=self.window_start)

    # ------------------------------------------------------------------ views

    @property
    def status(self) -> Status:
        """Mirror of `status()`: HALT_ORACLE while the oracle halt is recorded, else the collateral status."""
        return Status.HALT_ORACLE if self.oracle_halted else self.cr_status

    @property
    def paused(self) -> bool:
        """Mirror of `paused()`: a pause lasts until `paused_until`, with no transaction to end it."""
        return self.now < self.paused_until

    @property
    def cmp_supply(self) -> int:
        return sum(self.cmp.values())

    @property
    def crd_supply(self) -> int:
        return sum(self.crd.values())

    @property
    def escrowed_credits(self) -> int:
        return sum(j.max_credits for j in self.jobs.values() if j.status == JobStatus.OPEN)

    @property
    def total_earnings(self) -> int:
        return sum(self.earnings.values())

    @property
    def current_epoch(self) -> int:
        return (self.now - self.epoch_genesis) // self.epoch_length

    def checked_price(self) -> tuple[int, int]:
        """The oracle price and confidence, or the revert the BME core gives for the reading."""
        o, p = self.oracle, self.params
        if o.price == 0:
            raise ModelRevert("BmeOracleNonPositive")
        if not is_fresh(o.updated_at, self.now, o.max_age):
            raise ModelRevert("BmeOracleStale", o.updated_at, o.max_age)
        if not m.confidence_within(o.price, o.confidence, p.oracle_max_confidence_bps):
            raise ModelRevert("BmeOracleUncertain", o.price, o.confidence, p.oracle_max_confidence_bps)
        return o.price, o.confidence

    def collateral_ratio_bps(self, price: int) -> int:
        return m.collateral_ratio_bps_down(
            self.remint_credits + self.seed_tokens, price, self.outstanding_credits
        )

    def _next(self, previous: Status, price: int) -> Status:
        p = self.params
        return next_status(
            previous,
            True,
            self.collateral_ratio_bps(price),
            p.cr_warn_bps,
            p.cr_halt_bps,
            p.cr_hysteresis_bps,
        )

    # ------------------------------------------------------------------ oracle and status

    def push_price(self, price: int, confidence: int, updated_at: int) -> None:
        """Mirror of `ManualPriceOracle.pushPrice`."""
        if price == 0:
            raise ModelRevert("ManualPriceOracleZeroPrice")
        if price >= 2**128 or confidence >= 2**88:
            raise ModelRevert("ManualPriceOracleOverflow")
        if updated_at <= self.oracle.updated_at or updated_at > self.now:
            raise ModelRevert("ManualPriceOracleBadTimestamp", updated_at, self.oracle.updated_at)
        o = self.oracle
        elapsed = updated_at - o.updated_at
        if not step_within(o.price, price, o.max_step_bps, elapsed, o.step_period):
            allowed = allowed_step_bps(o.max_step_bps, elapsed, o.step_period)
            raise ModelRevert("ManualPriceOracleStepTooLarge", price, o.price, allowed)
        self.oracle = replace(o, price=price, confidence=confidence, updated_at=updated_at)

    def _record(self, cr_status: Status) -> None:
        """A good price reading: records the collateral status and ends an oracle halt."""
        self.cr_status = cr_status
        self.oracle_halted = False

    def sync_status(self) -> Status:
        """Mirror of `BurnMintEquilibrium.syncStatus`: a failing oracle records the oracle halt and leaves the
        collateral status, and so its hysteresis, as it was."""
        try:
            price, _ = self.checked_price()
        except ModelRevert:
            self.oracle_halted = True
        else:
            self._record(self._next(self.cr_status, price))
        return self.status

    # ------------------------------------------------------------------ pause and limits

    def pause(self) -> None:
        """Mirror of the guardian's `pause` (`ExpiringPausable._pauseExpiring`)."""
        if self.paused:
            raise ModelRevert("EnforcedPause")
        if self.now < self.next_pause_at:
            raise ModelRevert("PauseCooldown", self.next_pause_at)
        self.paused_until = self.now + MAX_PAUSE
        self.next_pause_at = self.paused_until + PAUSE_COOLDOWN

    def unpause(self) -> None:
        """Mirror of governance's `unpause` (`ExpiringPausable._unpauseEarly`)."""
        if not self.paused:
            raise ModelRevert("ExpectedPause")
        self.paused_until = self.now
        self.next_pause_at = self.now + PAUSE_COOLDOWN

    def set_mint_limit(self, limit: int) -> None:
        """Mirror of `setMintLimit` (redemptions' window)."""
        if limit > MAX_MINT_LIMIT_PER_WINDOW:
            raise ModelRevert("BmeMintLimitTooHigh", limit, MAX_MINT_LIMIT_PER_WINDOW)
        self.mint_limit = limit

    def set_emission_limit(self, limit: int) -> None:
        """Mirror of `setEmissionLimit` (emissions' window)."""
        if limit > MAX_MINT_LIMIT_PER_WINDOW:
            raise ModelRevert("BmeMintLimitTooHigh", limit, MAX_MINT_LIMIT_PER_WINDOW)
        self.emission_limit = limit

    # ------------------------------------------------------------------ burns

    def _burn_for_credits(self, payer: str, tokens: int, min_credits: int) -> int:
        if self.paused:
            raise ModelRevert("EnforcedPause")
        if tokens == 0:
            raise ModelRevert("BmeZeroAmount")
        p = self.params
        price, confidence = self.checked_price()
        current = self._next(self.cr_status, price)
        if current == Status.HALT_CR:
            raise ModelRevert("BmeHalted", current)
        burn_price = m.burn_price_down(price, confidence, p.confidence_multiplier)
        credits = m.to_credits_down(tokens, burn_price, p.mint_spread_bps)
        if credits < p.min_mint_credits:
            raise ModelRevert("BmeBelowMinimumMint", credits, p.min_mint_credits)
        if credits < min_credits:
            raise ModelRevert("BmeSlippageExceeded", credits, min_credits)
        balance = self.cmp.get(payer, 0)
        if balance < tokens:
            raise ModelRevert("ERC20InsufficientBalance", payer, balance, tokens)
        self.remint_credits += tokens
        self.outstanding_credits += credits
        self._record(self._next(current, price))
        self.cmp[payer] = balance - tokens
        self.cmp_burned += tokens
        return credits

    def burn(self, payer: str, tokens: int, min_credits: int) -> int:
        """Mirror of `BurnMintEquilibrium.burn`: credits go to the payer's CRD balance."""
        credits = self._burn_for_credits(payer, tokens, min_credits)
        self.crd[payer] = self.crd.get(payer, 0) + credits
        return credits

    # ------------------------------------------------------------------ jobs

    def _check_new_job(self, payer: str, terms: JobTerms) -> int:
        job_id = job_id_for(payer, terms.spec_hash)
        if job_id in self.jobs:
            raise ModelRevert("JobEscrowJobExists", job_id)
        listing = self.models.get(terms.model_id)
        if listing is None or not listing[2]:
            raise ModelRevert("JobEscrowModelNotListed", terms.model_id)
        earliest = self.now + self.min_job_duration
        latest = self.now + self.max_job_duration
        if terms.deadline < earliest or terms.deadline > latest:
            raise ModelRevert("JobEscrowInvalidDeadline", terms.deadline, earliest, latest)
        if terms.max_input_tokens == 0 or terms.max_output_tokens == 0:
            raise ModelRevert("JobEscrowZeroUsageCap", terms.max_input_tokens, terms.max_output_tokens)
        return job_id

    def _job(self, payer: str, max_credits: int, terms: JobTerms) -> Job:
        return Job(
            payer,
            terms.model_id,
            terms.deadline,
            max_credits,
            max_input_tokens=terms.max_input_tokens,
            max_output_tokens=terms.max_output_tokens,
        )

    def open_job(self, payer: str, max_credits: int, terms: JobTerms) -> int:
        """Mirror of `JobEscrow.openJob`."""
        if self.paused:
            raise ModelRevert("EnforcedPause")
        if max_credits == 0:
            raise ModelRevert("JobEscrowZeroAmount")
        job_id = self._check_new_job(payer, terms)
        if max_credits > MAX_JOB_CREDITS:
            raise ModelRevert("JobEscrowMaxCreditsTooLarge", max_credits)
        balance = self.crd.get(payer, 0)
        if balance < max_credits:
            raise ModelRevert("ERC20InsufficientBalance", payer, balance, max_credits)
        self.jobs[job_id] = self._job(payer, max_credits, terms)
        self.crd[payer] = balance - max_credits
        return job_id

    def burn_for_job(self, payer: str, tokens: int, min_credits: int, terms: JobTerms) -> tuple[int, int]:
        """Mirror of `JobEscrow.burnForJob`: the credits all become the job's reservation."""
        if self.paused:
            raise ModelRevert("EnforcedPause")
        job_id = self._check_new_job(payer, terms)
        snapshot = (
            self.remint_credits,
            self.outstanding_credits,
            self.cr_status,
            self.oracle_halted,
            dict(self.cmp),
            self.cmp_burned,
        )
        credits = self._burn_for_credits(payer, tokens, min_credits)
        if credits > MAX_JOB_CREDITS:
            (
                self.remint_credits,
                self.outstanding_credits,
                self.cr_status,
                self.oracle_halted,
                self.cmp,
                self.cmp_burned,
            ) = snapshot
            raise ModelRevert("JobEscrowMaxCreditsTooLarge", credits)
        self.jobs[job_id] = self._job(payer, credits, terms)
        return job_id, credits

    def settle(self, settlements: list[Settlement], operators: OperatorView) -> list[tuple[int, int]]:
        """Mirror of `JobEscrow.settle`: all or nothing; returns (charge, refund) per job. `operators` is the
        operator registry, which every settlement's operator must be active in and list the job's model."""
        staged: list[tuple[Settlement, Job, int, int]] = []
        seen: set[int] = set()
        for s in settlements:
            job = self.jobs.get(s.job_id)
            status = JobStatus.SETTLED if s.job_id in seen else (job.status if job else JobStatus.NONE)
            if job is None or status != JobStatus.OPEN:
                raise ModelRevert("JobEscrowJobNotOpen", s.job_id, status)
            if self.now > job.deadline:
                raise ModelRevert("JobEscrowDeadlinePassed", s.job_id, job.deadline)
            if int(s.operator, 16) == 0:
                raise ModelRevert("JobEscrowZeroOperator", s.job_id)
            if s.input_tokens > job.max_input_tokens or s.output_tokens > job.max_output_tokens:
                raise ModelRevert(
                    "JobEscrowUsageAboveCaps",
                    s.job_id,
                    s.input_tokens,
                    s.output_tokens,
                    job.max_input_tokens,
                    job.max_output_tokens,
                )
            if not operators.is_active(s.operator):
                raise ModelRevert("JobEscrowOperatorNotActive", s.job_id, s.operator)
            if not operators.serves(s.operator, job.model_id):
                raise ModelRevert("JobEscrowOperatorNotServingModel", s.job_id, s.operator, job.model_id)
            in_price, out_price, _ = self.models[job.model_id]
            cost = m.job_cost_up(s.input_tokens, s.output_tokens, in_price, out_price)
            charge = min(cost, job.max_credits)
            staged.append((s, job, charge, job.max_credits - charge))
            seen.add(s.job_id)
        epoch = self.current_epoch
        for s, job, charge, refund in staged:
            job.status = JobStatus.SETTLED
            self.earnings[s.operator] = self.earnings.get(s.operator, 0) + charge
            self.work[(s.operator, epoch)] = self.work.get((s.operator, epoch), 0) + charge
            self.epoch_work[epoch] = self.epoch_work.get(epoch, 0) + charge
            self.crd[job.payer] = self.crd.get(job.payer, 0) + refund
        return [(charge, refund) for _, _, charge, refund in staged]

    def expire(self, job_id: int) -> int:
        """Mirror of `JobEscrow.expire`: returns the refund."""
        job = self.jobs.get(job_id)
        if job is None or job.status != JobStatus.OPEN:
            raise ModelRevert("JobEscrowJobNotOpen", job_id, job.status if job else JobStatus.NONE)
        if self.now <= job.deadline:
            raise ModelRevert("JobEscrowDeadlineNotReached", job_id, job.deadline)
        job.status = JobStatus.EXPIRED
        self.crd[job.payer] = self.crd.get(job.payer, 0) + job.max_credits
        return job.max_credits

    # ------------------------------------------------------------------ redemptions

    def redeem(self, operator: str, credits: int, min_tokens: int) -> int:
        """Mirror of `BurnMintEquilibrium.redeem`: returns the CMP minted."""
        if self.paused:
            raise ModelRevert("EnforcedPause")
        if credits == 0:
            raise ModelRevert("BmeZeroAmount")
        p = self.params
        price, confidence = self.checked_price()
        redeem_price = m.redeem_price_up(price, confidence, p.confidence_multiplier)
        tokens = m.to_tokens_down(credits, redeem_price, p.settle_spread_bps)
        if tokens == 0:
            raise ModelRevert("BmeZeroAmount")
        if tokens < min_tokens:
            raise ModelRevert("BmeSlippageExceeded", tokens, min_tokens)
        earned = self.earnings.get(operator, 0)
        if earned < credits:
            raise ModelRevert("JobEscrowInsufficientEarnings", operator, earned, credits)
        window = consume(self.window, self.now, p.mint_window, self.mint_limit, tokens)
        if window is None:
            raise ModelRevert("BmeRateLimited", tokens)
        self.window = window
        reissued = min(tokens, self.remint_credits)
        self.remint_credits -= reissued
        self.outstanding_credits -= credits
        self.total_reissued += reissued
        self.total_new_issuance += tokens - reissued
        self._record(self._next(self.cr_status, price))
        self.earnings[operator] = earned - credits
        self.cmp[operator] = self.cmp.get(operator, 0) + tokens
        self.cmp_minted += tokens
        return tokens

    # ------------------------------------------------------------------ emissions and CMP movements

    def check_mint_emission(self, tokens: int) -> WindowState:
        """The checks of `BurnMintEquilibrium.mintEmission`, in order; returns the emissions' window after."""
        if self.paused:
            raise ModelRevert("EnforcedPause")
        if tokens == 0:
            raise ModelRevert("BmeZeroAmount")
        window = consume(self.emission_window, self.now, self.params.mint_window, self.emission_limit, tokens)
        if window is None:
            raise ModelRevert("BmeRateLimited", tokens)
        return window

    def mint_emission(self, to: str, tokens: int, window: WindowState | None = None) -> None:
        """Mirror of `BurnMintEquilibrium.mintEmission` (the emission schedule's mint)."""
        self.emission_window = window if window is not None else self.check_mint_emission(tokens)
        self.cmp[to] = self.cmp.get(to, 0) + tokens
        self.cmp_minted += tokens

    def transfer_cmp(self, sender: str, to: str, amount: int) -> None:
        """An ERC-20 transfer of CMP (`transfer`, or `transferFrom` with a sufficient allowance)."""
        balance = self.cmp.get(sender, 0)
        if balance < amount:
            raise ModelRevert("ERC20InsufficientBalance", sender, balance, amount)
        self.cmp[sender] = balance - amount
        self.cmp[to] = self.cmp.get(to, 0) + amount

    def burn_cmp(self, holder: str, amount: int) -> None:
        """CMP burned by its holder (`ERC20Burnable.burn`)."""
        balance = self.cmp.get(holder, 0)
        if balance < amount:
            raise ModelRevert("ERC20InsufficientBalance", holder, balance, amount)
        self.cmp[holder] = balance - amount
        self.cmp_burned += amount

    def mint_genesis(self, to: str, amount: int) -> None:
        """The deployment's genesis allocation."""
        self.cmp[to] = self.cmp.get(to, 0) + amount
        self.cmp_minted += amount

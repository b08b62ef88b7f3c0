"""The simulated participants and the epoch loop, shared by chain and model runs.

Users pay for their jobs as a wallet would: from their credit balance when it covers the job's most it can
cost (`openJob`), otherwise by burning CMP for a top-up whose credits all reserve the job (`burnForJob`); they
only send when their wallet can quote (a usable oracle price) and they hold the tokens. Operators serve jobs
up to their capacity (the relayer hands jobs out in turn, settling in batches), redeem a share of their
earnings and claim their emission rewards on their own rhythm. The feeder pushes the price path's price at
each epoch's start (except in outages) and a keeper records the status.

Every decision depends only on the scenario, its seed, the price path and what the backend reports (outcomes
and balances), so a chain run and a model run take the same actions in the same order, block for block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from bme.economics import math as m
from bme.economics.emission import DEFAULT_CLAIM_DELAY_EPOCHS
from bme.economics.jobs import job_id_for
from bme.economics.model import Settlement
from bme.economics.oracle import bounded_steps, is_fresh, step_within
from bme.economics.params import MAX_JOB_CREDITS, Parameters
from bme.errors import BmeError
from bme.scenario import actions as a
from bme.scenario.accounts import Accounts
from bme.scenario.backend import Backend, OracleReading, ProtocolState
from bme.scenario.demand import Demand, JobRequest
from bme.scenario.prices import PricePath
from bme.scenario.records import EpochRecord
from bme.scenario.spec import Scenario, share_fraction
from bme.scenario.timeline import ACTIVITY, SETTLEMENTS
from bme.scenario.units import scaled

ENDPOINT = "https://operator.invalid/v1"
RESULT_HASH = b"\x11" * 32
UINT256_MAX = 2**256 - 1
UINT32_MAX = 2**32 - 1


def first_claim(join_epoch: int) -> int:
    """The first scenario epoch in which an operator joining in `join_epoch` has rewards past the challenge
    window. Stake registered during the chain's epoch c is rewardable from c + 1, whose rewards may be claimed
    from c + 2 + delay; the setup is the chain's epoch 0, and scenario epoch j the chain's j + 1."""
    chain_registered = 0 if join_epoch == 0 else join_epoch + 1
    return chain_registered + 2 + DEFAULT_CLAIM_DELAY_EPOCHS - 1


class ScenarioError(BmeError):
    """A replay could not go on (its setup failed)."""


@dataclass(frozen=True)
class _Operator:
    address: str
    stake: int
    capacity: int
    models: frozenset[int]
    join_epoch: int
    redeem_every: int
    redeem_share: Fraction
    claim_every: int
    wash_credits: int | None  # dollars of self-paid jobs per epoch (CRD units); None: not a wash trader
    wash_cmp: int  # CMP it starts with beside its stake


@dataclass(slots=True)
class _Job:
    job_id: int
    payer: str
    model_id: int
    input_tokens: int
    output_tokens: int
    deadline: int


@dataclass
class _Tally:
    """What happened in an epoch, by the driver's count."""

    jobs_requested: int = 0
    jobs_opened: int = 0
    jobs_rejected: int = 0
    jobs_settled: int = 0
    jobs_expired: int = 0
    burns: int = 0
    redemptions: int = 0
    credits_redeemed: int = 0
    claims: int = 0
    transactions: int = 0
    failed: int = 0
    opened: list[_Job] = field(default_factory=list)
    joined: list[int] = field(default_factory=list)
    wash_opened: list[tuple[int, _Job]] = field(default_factory=list)
    wash_burned: dict[int, int] = field(default_factory=dict)

    def count(self, outcomes: list[bool]) -> None:
        self.transactions += len(outcomes)
        self.failed += outcomes.count(False)


def usable_price(r: OracleReading, now: int, p: Parameters, max_age: int) -> tuple[int, int] | None:
    """What a wallet's quote sees: the reading's price and confidence, or None when the BME core would refuse
    it (no price, stale under the oracle's `max_age` or from the future, too uncertain)."""
    if r.price == 0 or not is_fresh(r.updated_at, now, max_age):
        return None
    if not m.confidence_within(r.price, r.confidence, p.oracle_max_confidence_bps):
        return None
    return r.price, r.confidence


class Driver:
    """Runs a scenario's setup and epochs against a backend, one `EpochRecord` per epoch."""

    def __init__(
        self, s: Scenario, backend: Backend, accounts: Accounts, path: PricePath, demand: Demand
    ) -> None:
        self.s, self.backend, self.accounts, self.path, self.demand = s, backend, accounts, path, demand
        self.params = s.protocol.parameters()
        self.oracle_max_age = s.protocol.oracle_max_age
        self.oracle_max_step_bps = s.protocol.oracle_max_step_bps
        self.oracle_step_period = s.protocol.oracle_step_period
        self.timeline = backend.timeline
        self.model_prices = s.model_prices()
        self.all_models = frozenset(self.model_prices)
        self.ttl = s.job_ttl
        self.users = [k.address for k in accounts.users]
        self.topup: list[int] = []
        self.cmp_per_user: list[int] = []
        for g in s.demand.groups:
            self.topup += [scaled(g.topup_credits, 6, "topup_credits")] * g.users
            self.cmp_per_user += [scaled(g.cmp_per_user, 18, "cmp_per_user")] * g.users
        self.operators: list[_Operator] = []
        for o in s.operators:
            wash = None if o.wash is None else scaled(o.wash.usd_per_epoch, 6, "wash.usd_per_epoch")
            wash_cmp = 0 if o.wash is None else scaled(o.wash.cmp, 18, "wash.cmp")
            for _ in range(o.count):
                key = accounts.operators[len(self.operators)]
                self.operators.append(
                    _Operator(
                        key.address,
                        scaled(o.stake, 18, "stake"),
                        o.capacity,
                        frozenset(o.models) if o.models is not None else self.all_models,
                        o.join_epoch,
                        o.redeem_every,
                        share_fraction(o.redeem_share),
                        o.claim_every,
                        wash,
                        wash_cmp,
                    )
                )
        self.operator_addresses = [o.address for o in self.operators]
        self.washers = [i for i, o in enumerate(self.operators) if o.wash_credits]
        self.idlers = [i for i, o in enumerate(self.operators) if o.wash_credits == 0]
        self.registered: set[int] = set()
        self.open_jobs: dict[int, _Job] = {}
        self.specs = 0
        self.previous: ProtocolState | None = None

    # -- setup ------------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Funds users and operators from the treasury, approves the BME core and the registry, and registers
        the operators that start at epoch 0, in one block."""
        treasury = self.accounts.treasury.address
        acts: list[a.Action] = [
            a.TransferCmp(treasury, u, amount)
            for u, amount in zip(self.users, self.cmp_per_user, strict=True)
        ]
        acts += [a.TransferCmp(treasury, o.address, o.stake + o.wash_cmp) for o in self.operators]
        acts += [a.ApproveCmp(u, "bme") for u in self.users]
        acts += [a.ApproveCmp(self.operators[i].address, "bme") for i in self.washers]
        acts += [a.ApproveCmp(o.address, "registry") for o in self.operators]
        starters = [i for i, o in enumerate(self.operators) if o.join_epoch == 0]
        acts += [self._register(i) for i in starters]
        outcomes = self.backend.execute(self.timeline.setup_time, acts)
        if not all(outcomes):
            raise ScenarioError(f"the setup failed at action {outcomes.index(False)} of {len(acts)}")
        self.registered.update(starters)
        self.previous = self.backend.read_state(0, self.operator_addresses)

    def _register(self, i: int) -> a.Register:
        o = self.operators[i]
        return a.Register(o.address, o.stake, ENDPOINT, tuple(sorted(o.models)))

    # -- epochs -----------------------------------------------------------------------------------------

    def run(
        self, on_epoch: Callable[[int, EpochRecord], None] | None = None, epochs: int | None = None
    ) -> list[EpochRecord]:
        """The setup and every epoch (or the first `epochs`); `on_epoch` is called after each."""
        self.setup()
        records = []
        for k in range(self.s.epochs if epochs is None else min(epochs, self.s.epochs)):
            record = self.run_epoch(k)
            records.append(record)
            if on_epoch is not None:
                on_epoch(k, record)
        return records

    def run_epoch(self, k: int) -> EpochRecord:
        start = self.timeline.epoch_start(k)
        tally = _Tally()
        self._activity(k, start + ACTIVITY, tally)
        self._settlements(k, start + SETTLEMENTS, tally)
        state = self.backend.read_state(self.timeline.chain_epoch(k), self.operator_addresses)
        record = self._record(k, start + SETTLEMENTS, state, tally)
        self.previous = state
        return record

    def _pushes(self, last: OracleReading, reading: OracleReading, now: int) -> list[a.Action]:
        """The feeder's pushes that take the oracle from its `last` reading to `reading` at `now`: one, or,
        for a move past the oracle's step bound, several bounded steps observed a step period (at least a
        second) apart, the last one at `now`."""
        bps, period = self.oracle_max_step_bps, self.oracle_step_period
        steps = bounded_steps(last.price, reading.price, bps)
        spacing = max(period, 1)
        times = [now - (len(steps) - 1 - i) * spacing for i in range(len(steps))]
        previous, at = last.price, last.updated_at
        for price, t in zip(steps, times, strict=True):
            if t <= at or not step_within(previous, price, bps, t - at, period):
                raise ScenarioError(
                    f"the price moves from {last.price} to {reading.price} in {len(steps)} steps of at most "
                    f"{bps} bps, {spacing} s apart, more than the {now - last.updated_at} s since the last "
                    "push allow: raise protocol.oracle_max_step_bps or lower protocol.oracle_step_period"
                )
            previous, at = price, t
        feeder = self.accounts.feeder.address
        return [a.PushPrice(feeder, p, reading.confidence, t) for p, t in zip(steps, times, strict=True)]

    def _activity(self, k: int, now: int, tally: _Tally) -> None:
        """The epoch's first block: the price push and the status, expiries, late registrations, redemptions,
        claims, then the users' jobs. Wallets decide on what they read before the block."""
        feeder, relayer = self.accounts.feeder.address, self.accounts.relayer.address
        requests = self.demand.requests(k)
        tally.jobs_requested = len(requests)
        involved = sorted({r.user for r in requests})
        due = [i for i in sorted(self.registered) if k % self.operators[i].redeem_every == 0]
        washing = [i for i in self.washers if i in self.registered]
        view = self.backend.wallets(
            [self.users[u] for u in involved] + [self.operators[i].address for i in washing],
            [self.operators[i].address for i in due],
        )
        pushed = self.path.pushed[k]
        reading = OracleReading(self.path.market[k], self.path.confidence[k], now) if pushed else view.oracle
        quote = usable_price(reading, now, self.params, self.oracle_max_age)

        acts: list[a.Action] = []
        if pushed:
            acts += self._pushes(view.oracle, reading, now)
        pushes = len(acts)
        acts.append(a.SyncStatus(feeder))
        expiring = [j for j in self.open_jobs.values() if j.deadline < now]
        acts += [a.Expire(relayer, j.job_id) for j in expiring]
        joining = [i for i, o in enumerate(self.operators) if o.join_epoch == k and i not in self.registered]
        acts += [self._register(i) for i in joining]
        redeeming: list[int] = []
        if quote is not None:
            for i, earned in zip(due, view.earnings, strict=True):
                credits = int(earned * self.operators[i].redeem_share)
                if credits > 0:
                    redeeming.append(credits)
                    acts.append(a.Redeem(self.operators[i].address, credits, 0))
        claiming = [
            i
            for i in sorted(self.registered)
            if k >= first_claim(self.operators[i].join_epoch) and k % self.operators[i].claim_every == 0
        ]
        acts += [a.Claim(self.operators[i].address) for i in claiming]
        first_job = len(acts)
        wallets = {u: list(b) for u, b in zip(involved, view.balances, strict=False)}
        pending = self._pay(requests, wallets, quote, now, acts, tally)
        first_wash = len(acts)
        wash_cmp = [b[0] for b in view.balances[len(involved) :]]
        wash_jobs = self._wash(washing, wash_cmp, quote, now, acts)

        outcomes = self.backend.execute(now, acts)
        tally.count(outcomes)
        rest = outcomes[pushes + 1 :]
        for job, ok in zip(expiring, rest, strict=False):
            if ok:
                del self.open_jobs[job.job_id]
                tally.jobs_expired += 1
        rest = rest[len(expiring) :]
        tally.joined = [i for i, ok in zip(joining, rest, strict=False) if ok]
        self.registered.update(tally.joined)
        rest = rest[len(joining) :]
        for credits, ok in zip(redeeming, rest, strict=False):
            if ok:
                tally.redemptions += 1
                tally.credits_redeemed += credits
        rest = rest[len(redeeming) :]
        for ok in rest[: len(claiming)]:
            # A failed claim loses nothing: the next takes every unclaimed epoch past the challenge window.
            tally.claims += ok
        for (job, burned), ok in zip(pending, outcomes[first_job:first_wash], strict=True):
            if ok:
                self.open_jobs[job.job_id] = job
                tally.opened.append(job)
                tally.jobs_opened += 1
                tally.burns += burned
            else:
                tally.jobs_rejected += 1
        tally.jobs_requested += len(wash_jobs)
        for (i, job, tokens), ok in zip(wash_jobs, outcomes[first_wash:], strict=True):
            if ok:
                self.open_jobs[job.job_id] = job
                tally.wash_opened.append((i, job))
                tally.jobs_opened += 1
                tally.burns += 1
                tally.wash_burned[i] = tally.wash_burned.get(i, 0) + tokens
            else:
                tally.jobs_rejected += 1

    def _wash(
        self,
        washing: list[int],
        cmp: list[int],
        quote: tuple[int, int] | None,
        now: int,
        acts: list[a.Action],
    ) -> list[tuple[int, _Job, int]]:
        """Appends each wash trader's burns for the jobs it pays for itself to `acts` (when its wallet can
        quote and it holds the tokens); returns the operator, the job and the CMP burned for each. A job is
        sized so that answering it charges its whole reservation: the trader's most expensive model, with as
        many output tokens as that takes (a count fits 32 bits, so a large volume is split over jobs)."""
        if quote is None or not washing:
            return []
        p = self.params
        burn_price = m.burn_price_down(quote[0], quote[1], p.confidence_multiplier)
        if burn_price == 0:
            return []
        out: list[tuple[int, _Job, int]] = []
        for i, balance in zip(washing, cmp, strict=True):
            o = self.operators[i]
            assert o.wash_credits
            model_id = max(sorted(o.models), key=lambda mid: self.model_prices[mid][1])
            out_price = self.model_prices[model_id][1]
            per_job = min(MAX_JOB_CREDITS, UINT32_MAX * out_price // 10**6)
            left = o.wash_credits
            while left > 0:
                want = min(left, per_job)
                # A last piece below the minimum mint is bought at the minimum (the rest waits in credits).
                want = max(want, p.min_mint_credits)
                left -= want
                tokens = m.to_tokens_up(want, burn_price, p.mint_spread_bps)
                if balance < tokens:
                    break
                balance -= tokens
                credits = m.to_credits_down(tokens, burn_price, p.mint_spread_bps)
                output = min(UINT32_MAX, m.ceil_div(credits * 10**6, out_price))
                self.specs += 1
                spec = self.specs.to_bytes(32, "big")
                deadline = now + self.ttl
                acts.append(a.BurnForJob(o.address, tokens, want, model_id, spec, deadline))
                job = _Job(job_id_for(o.address, spec), o.address, model_id, 0, output, deadline)
                out.append((i, job, tokens))
        return out

    def _pay(
        self,
        requests: list[JobRequest],
        wallets: dict[int, list[int]],
        quote: tuple[int, int] | None,
        now: int,
        acts: list[a.Action],
        tally: _Tally,
    ) -> list[tuple[_Job, bool]]:
        """Appends each user's payment for its job to `acts`: from credits when its balance covers the job's
        most, else a burn for a top-up (when its wallet can quote and it holds the tokens); returns the jobs
        paid for and whether each burned."""
        p = self.params
        burn_price = m.burn_price_down(quote[0], quote[1], p.confidence_multiplier) if quote else 0
        pending: list[tuple[_Job, bool]] = []
        deadline = now + self.ttl
        for r in requests:
            user = self.users[r.user]
            in_price, out_price = self.model_prices[r.model_id]
            max_cost = max(m.job_cost_up(r.input_tokens, r.max_output_tokens, in_price, out_price), 1)
            self.specs += 1
            spec = self.specs.to_bytes(32, "big")
            wallet = wallets[r.user]
            if max_cost > MAX_JOB_CREDITS:
                tally.jobs_rejected += 1
                continue
            if wallet[1] >= max_cost:
                wallet[1] -= max_cost
                acts.append(a.OpenJob(user, r.model_id, max_cost, spec, deadline))
                burned = False
            else:
                if burn_price == 0:
                    tally.jobs_rejected += 1
                    continue
                want = max(self.topup[r.user], max_cost, p.min_mint_credits)
                tokens = m.to_tokens_up(want, burn_price, p.mint_spread_bps)
                if wallet[0] < tokens:
                    tally.jobs_rejected += 1
                    continue
                wallet[0] -= tokens
                acts.append(a.BurnForJob(user, tokens, want, r.model_id, spec, deadline))
                burned = True
            job = _Job(job_id_for(user, spec), user, r.model_id, r.input_tokens, r.output_tokens, deadline)
            pending.append((job, burned))
        return pending

    def _settlements(self, k: int, now: int, tally: _Tally) -> None:
        """The second block: the relayer hands this epoch's jobs to operators in turn, up to their capacity,
        and settles each operator's jobs together, in batches."""
        active = sorted(self.registered)
        if not (tally.opened or tally.wash_opened) or not active:
            return
        left = {i: self.operators[i].capacity for i in active}
        served: dict[int, list[_Job]] = {i: [] for i in active}
        for i, job in tally.wash_opened:
            served[i].append(job)  # the worst case: a wash trader answers every job it paid for
        turn = k % len(active)
        for job in tally.opened:
            for step in range(len(active)):
                i = active[(turn + step) % len(active)]
                if left[i] > 0 and job.model_id in self.operators[i].models:
                    served[i].append(job)
                    left[i] -= 1
                    turn = (turn + step + 1) % len(active)
                    break
        items: list[tuple[int, Settlement]] = []
        for i in active:
            address = self.operators[i].address
            items += [
                (i, Settlement(j.job_id, address, j.input_tokens, j.output_tokens, RESULT_HASH))
                for j in served[i]
            ]
        size = self.s.relayer.settle_batch
        batches = [items[n : n + size] for n in range(0, len(items), size)]
        relayer = self.accounts.relayer.address
        acts: list[a.Action] = [a.Settle(relayer, tuple(s for _, s in batch)) for batch in batches]
        outcomes = self.backend.execute(now, acts)
        tally.count(outcomes)
        for batch, ok in zip(batches, outcomes, strict=True):
            if ok:
                for _, s in batch:
                    del self.open_jobs[s.job_id]
                tally.jobs_settled += len(batch)

    # -- the record -------------------------------------------------------------------------------------

    def _record(self, k: int, now: int, state: ProtocolState, tally: _Tally) -> EpochRecord:
        prev = self.previous
        assert prev is not None
        total_burned = state.remint_credits + state.total_reissued
        prev_burned = prev.remint_credits + prev.total_reissued
        cr = m.collateral_ratio_bps_down(
            state.remint_credits + state.seed_tokens, state.oracle.price, state.outstanding_credits
        )
        earnings = sum(state.earnings)
        claimed = sum(state.rewards_claimed)
        operator_cmp = sum(state.operator_cmp)
        rewards = [now - then for now, then in zip(state.rewards_claimed, prev.rewards_claimed, strict=True)]
        wash_rewards = sum(rewards[i] for i in self.washers)
        # A wash trader's CMP changes only by its claims, its redemptions, its burns and its registration.
        wash_redeemed = sum(
            state.operator_cmp[i]
            - prev.operator_cmp[i]
            - rewards[i]
            + tally.wash_burned.get(i, 0)
            + (self.operators[i].stake if i in tally.joined else 0)
            for i in self.washers
        )
        return EpochRecord(
            epoch=k,
            start=k * self.s.epoch_length,
            market_price=self.path.market[k],
            price_pushed=self.path.pushed[k],
            oracle_price=state.oracle.price,
            oracle_confidence=state.oracle.confidence,
            oracle_age=now - state.oracle.updated_at if state.oracle.updated_at else -1,
            status=state.status,
            collateral_ratio_bps=None if cr == UINT256_MAX else cr,
            cmp_supply=state.cmp_supply,
            supply_change=state.cmp_supply - prev.cmp_supply,
            burned=total_burned - prev_burned,
            reissued=state.total_reissued - prev.total_reissued,
            new_issuance=state.total_new_issuance - prev.total_new_issuance,
            emission_released=state.emission_released - prev.emission_released,
            rewards_claimed=claimed - sum(prev.rewards_claimed),
            total_burned=total_burned,
            total_reissued=state.total_reissued,
            total_new_issuance=state.total_new_issuance,
            total_emission=state.emission_released,
            total_rewards_claimed=claimed,
            remint_credits=state.remint_credits,
            seed_tokens=state.seed_tokens,
            outstanding_credits=state.outstanding_credits,
            user_credits=state.crd_supply,
            escrowed_credits=state.outstanding_credits - state.crd_supply - earnings,
            operator_earnings=earnings,
            epoch_work=state.epoch_work,
            epoch_emission=state.epoch_emission if state.reward_stake else 0,
            credits_redeemed=tally.credits_redeemed,
            staked=state.staked,
            unclaimed_emission=state.unclaimed_emission,
            user_cmp=state.cmp_supply
            - state.staked
            - state.unclaimed_emission
            - operator_cmp
            - state.treasury_cmp,
            operator_cmp=operator_cmp,
            treasury_cmp=state.treasury_cmp,
            wash_burned=sum(tally.wash_burned.values()),
            wash_rewards=wash_rewards,
            wash_redeemed=wash_redeemed,
            idle_rewards=sum(rewards[i] for i in self.idlers),
            wash_earnings=sum(state.earnings[i] for i in self.washers),
            jobs_requested=tally.jobs_requested,
            jobs_opened=tally.jobs_opened,
            jobs_rejected=tally.jobs_rejected,
            jobs_settled=tally.jobs_settled,
            jobs_unserved=tally.jobs_opened - tally.jobs_settled,
            jobs_expired=tally.jobs_expired,
            burns=tally.burns,
            redemptions=tally.redemptions,
            claims=tally.claims,
            transactions=tally.transactions,
            failed_transactions=tally.failed,
        )

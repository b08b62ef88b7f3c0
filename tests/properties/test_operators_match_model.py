"""Random sequences of registrations, work (paid and settled jobs), slashes, unjails, unbonding, withdrawals,
reward claims and redemptions across epochs, run on the contracts and on the pure-Python model
(`bme.economics.registry`, `bme.economics.emission`) side by side: every call must succeed or revert alike
with the same results, the stake checkpoints agree epoch by epoch, and invariant 7 of DESIGN.md section 4 must
hold on the chain after every step."""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from bme.economics.emission import EmissionModel, Schedule, reward_down
from bme.economics.model import JobTerms, Oracle, ProtocolModel, Settlement
from bme.economics.registry import RegistryModel
from tests.conftest import CMP, GENESIS, OPERATOR_STAKE, Deployed
from tests.contracts.helpers import Governance
from tests.properties.machine import GAS, ChainModelMachine

OPERATOR_CMP = 5_000 * CMP
UNBONDING_DELAY = 2 * 86_400
EVIDENCE = b"\x0e" * 32


class OperatorsVersusModel(ChainModelMachine):
    def __init__(self) -> None:
        super().__init__()
        p = self.p
        self.model = ProtocolModel(
            now=self.now,
            window_start=p.window_start,
            epoch_genesis=p.escrow.epochGenesis(),
            epoch_length=p.escrow.epochLength(),
            oracle=Oracle(
                max_age=self.p.oracle.maxAge(),
                max_step_bps=self.p.oracle.maxStepBps(),
                step_period=self.p.oracle.stepPeriod(),
            ),
            mint_limit=p.bme.mintLimitPerWindow(),
            emission_limit=p.bme.emissionLimitPerWindow(),
        )
        self.model.models[1] = (100_000, 200_000, True)
        self.registry = RegistryModel(p.registry.address, unbonding_delay=UNBONDING_DELAY)
        schedule = Schedule(tuple(_segments(p)), p.emissions.hardCap())
        self.emissions = EmissionModel(p.emissions.address, schedule, p.emissions.claimDelayEpochs())
        for u in p.users:
            self.model.mint_genesis(u.address, GENESIS)
        for o in p.operators:
            self.model.mint_genesis(o.address, OPERATOR_STAKE)
        self.ops = list(p.operators)
        for op in self.ops:  # every operator gets CMP to stake, and approves the registry once
            self._tick()
            p.token.transfer(op, OPERATOR_CMP, sender=p.users[0], gas_limit=GAS)
            self.model.transfer_cmp(p.users[0].address, op.address, OPERATOR_CMP)
            self._tick()
            p.token.approve(p.registry.address, 2**256 - 1, sender=op, gas_limit=GAS)
        self.spec = 0
        self.claimed_per_epoch: dict[int, int] = {}
        self.r = self.readers(
            {
                "registry": "OperatorRegistry",
                "emissions": "EmissionSchedule",
                "token": "ComputeToken",
                "escrow": "JobEscrow",
            }
        )

    # -- rules -----------------------------------------------------------------------------

    @initialize(stakes=st.lists(st.sampled_from([1_000, 2_500]), min_size=3, max_size=3))
    def register_everyone(self, stakes: list[int]) -> None:
        """Every operator starts registered, so that sequences reach work and claims quickly."""
        for op, stake in enumerate(stakes):
            self.register(op, stake, 1)

    @rule(dt=st.sampled_from([3_600, 86_400, 90_000, 200_000]))
    def advance_time(self, dt: int) -> None:
        self._tick(dt)

    @rule(
        op=st.integers(0, 2),
        action=st.sampled_from(["register", "update", "unbond", "withdraw", "unjail"]),
        stake=st.sampled_from([0, 999, 1_000, 2_500]),
        n_models=st.sampled_from([0, 1, 3]),
    )
    def registry_change(self, op: int, action: str, stake: int, n_models: int) -> None:
        """One of the operator's own registry calls (or the slasher's unjail)."""
        if action == "register":
            self.register(op, stake, n_models)
        elif action == "update":
            self.update(op, n_models)
        elif action == "unbond":
            self.request_unbonding(op)
        elif action == "withdraw":
            self.withdraw(op)
        else:
            self.unjail(op)

    def register(self, op: int, stake: int, n_models: int) -> None:
        o, amount, models = self.ops[op], stake * CMP, tuple(range(1, n_models + 1))
        receipt, _ = self.both(
            lambda: self.p.registry.register(amount, "http://node/v1", list(models), sender=o, gas_limit=GAS),
            lambda: self.registry.register(self.model, o.address, amount, "http://node/v1", models),
        )
        if receipt is not None:
            assert receipt.events.filter(self.p.registry.OperatorRegistered)[0].stake == amount

    def update(self, op: int, n_models: int) -> None:
        o, models = self.ops[op], tuple(range(5, 5 + n_models))
        self.both(
            lambda: self.p.registry.update("http://moved/v1", list(models), sender=o, gas_limit=GAS),
            lambda: self.registry.update(o.address, "http://moved/v1", models),
        )

    def request_unbonding(self, op: int) -> None:
        o = self.ops[op]
        self.both(
            lambda: self.p.registry.requestUnbonding(sender=o, gas_limit=GAS),
            lambda: self.registry.request_unbonding(self.model, o.address),
        )

    def withdraw(self, op: int) -> None:
        o = self.ops[op]
        self.both(
            lambda: self.p.registry.withdraw(sender=o, gas_limit=GAS),
            lambda: self.registry.withdraw(self.model, o.address),
        )

    @rule(op=st.integers(0, 2), amount=st.sampled_from([0, 100, 5_000]))
    def slash(self, op: int, amount: int) -> None:
        o = self.ops[op]
        receipt, slashed = self.both(
            lambda: self.p.registry.slash(o, amount * CMP, EVIDENCE, sender=self.p.slasher, gas_limit=GAS),
            lambda: self.registry.slash(self.model, o.address, amount * CMP),
        )
        if receipt is not None:
            assert receipt.events.filter(self.p.registry.OperatorSlashed)[0].slashed == slashed

    def unjail(self, op: int) -> None:
        o = self.ops[op]
        self.both(
            lambda: self.p.registry.unjail(o, sender=self.p.slasher, gas_limit=GAS),
            lambda: self.registry.unjail(self.model, o.address),
        )

    @rule(op=st.integers(0, 2), charge=st.integers(1, 50_000_000), user=st.integers(0, 3))
    def work(self, op: int, charge: int, user: int) -> None:
        """A user pays for a job at a fresh $1.00 price; the relayer settles it to the operator."""
        p, o, u = self.p, self.ops[op], self.p.users[user]
        self.both(
            lambda: p.oracle.pushPrice(CMP, 0, self.now, sender=p.deployer, gas_limit=GAS),
            lambda: self.model.push_price(CMP, 0, self.now),
        )
        self.spec += 1
        terms = JobTerms(1, self.spec.to_bytes(32, "big"), self.now + 3_600, 2**32 - 1, 2**32 - 1)
        _, opened = self.both(
            lambda: p.escrow.burnForJob(100 * CMP, 0, terms.as_tuple(), sender=u, gas_limit=GAS),
            lambda: self.model.burn_for_job(u.address, 100 * CMP, 0, terms),
        )
        job_id = opened[0]
        self.both(
            lambda: p.escrow.settle(
                [(job_id, o.address, 0, charge * 5, b"\x01" * 32)], sender=p.relayer, gas_limit=GAS
            ),
            lambda: self.model.settle([Settlement(job_id, o.address, 0, charge * 5)], self.registry),
        )

    @rule(op=st.integers(0, 2), back=st.sampled_from([None, None, 0, 1, 2]))
    def claim(self, op: int, back: int | None) -> None:
        o, em = self.ops[op], self.p.emissions
        before = self.emissions.next_epoch.get(o.address, 0)
        start = before if before else self.registry.operator(o.address).first_epoch
        if back is None:
            receipt, tokens = self.both(
                lambda: em.claim(sender=o, gas_limit=GAS),
                lambda: self.emissions.claim(self.model, self.registry, o.address),
            )
        else:
            to = max(self.model.current_epoch - self.emissions.claim_delay_epochs - back, 0)
            receipt, tokens = self.both(
                lambda: em.claimThrough(to, sender=o, gas_limit=GAS),
                lambda: self.emissions.claim_through(self.model, self.registry, o.address, to),
            )
        if receipt is not None:
            event = receipt.events.filter(em.RewardsClaimed)[0]
            assert (event.fromEpoch, event.tokens) == (start, tokens)
            weights = self.registry.reward_weights(o.address, start, event.toEpoch)
            for e, (weight, total) in enumerate(weights, start):
                if weight:
                    share = reward_down(self.emissions.schedule.emission_at(e), weight, total)
                    self.claimed_per_epoch[e] = self.claimed_per_epoch.get(e, 0) + share

    @rule(op=st.integers(0, 2))
    def redeem(self, op: int) -> None:
        o = self.ops[op]
        earned = self.model.earnings.get(o.address, 0)
        self.both(
            lambda: self.p.oracle.pushPrice(CMP, 0, self.now, sender=self.p.deployer, gas_limit=GAS),
            lambda: self.model.push_price(CMP, 0, self.now),
        )
        self.both(
            lambda: self.p.bme.redeem(earned, 0, sender=o, gas_limit=GAS),
            lambda: self.model.redeem(o.address, earned, 0),
        )

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def state_matches_model(self) -> None:
        reg, em, token = (self.r[k].functions for k in ("registry", "emissions", "token"))
        for o in self.ops:
            a = o.address
            assert tuple(reg.operatorOf(a).call()) == self.registry.operator(a).as_tuple()
            assert reg.isActive(a).call() == self.registry.is_active(a)
            assert tuple(em.claimerOf(a).call()) == (
                self.emissions.next_epoch.get(a, 0),
                self.emissions.claimed.get(a, 0),
            )
        for a in [*(o.address for o in self.ops), *(u.address for u in self.p.users)]:
            assert token.balanceOf(a).call() == self.model.cmp.get(a, 0)
        for a in (self.p.registry.address, self.p.emissions.address):
            assert token.balanceOf(a).call() == self.model.cmp.get(a, 0)
        assert em.totalReleased().call() == self.emissions.total_released
        current = self.model.current_epoch
        for epoch in range(max(current - 3, 0), current + 2):
            assert reg.totalRewardStakeAt(epoch).call() == self.registry.total_reward_stake_at(epoch)
            for o in self.ops:
                a = o.address
                assert reg.rewardStakeAt(a, epoch).call() == self.registry.reward_stake_at(a, epoch)
        for o in self.ops:
            assert reg.slashedThrough(o.address).call() == self.registry.slashed_through(o.address)
            if current >= 3:
                weights = self.registry.reward_weights(o.address, current - 3, current - 1)
                assert [list(x) for x in reg.rewardWeights(o.address, current - 3, current - 1).call()] == [
                    [w for w, _ in weights],
                    [t for _, t in weights],
                ]
        assert token.totalSupply().call() == self.model.cmp_minted - self.model.cmp_burned

    @invariant()
    def emission_is_capped_and_claims_never_exceed_it(self) -> None:
        # Invariant 7: total emission never exceeds the hard cap; an epoch's claims never exceed its emission
        # and equal it, to rounding in the protocol's favour (under one unit per operator), once all claimed.
        em, schedule = self.emissions, self.emissions.schedule
        assert em.total_released <= schedule.bound <= schedule.hard_cap
        for epoch, claimed in self.claimed_per_epoch.items():
            emission = schedule.emission_at(epoch)
            assert claimed <= emission
            weights = {o.address: self.registry.reward_weight(o.address, epoch) for o in self.ops}
            stakers = [a for a, w in weights.items() if w]
            full = sum(weights.values()) == self.registry.total_reward_stake_at(epoch)
            if full and all(em.next_epoch.get(a, 0) > epoch for a in stakers):
                assert emission - claimed < len(stakers)
        # Rewards are minted at claim: the schedule holds nothing, and all it minted was claimed.
        assert self.model.cmp.get(em.address, 0) == 0
        assert em.total_released == sum(em.claimed.values())


def _segments(p: Deployed) -> list[Any]:
    from bme.economics.emission import Segment

    return [Segment(*s) for s in p.emissions.segments()]


def test_operators_and_model_agree_on_random_sequences(protocol: Deployed, chain: Any) -> None:
    gov = Governance(protocol, chain)
    gov.execute(protocol.registry.setUnbondingDelay, UNBONDING_DELAY)
    OperatorsVersusModel.p = protocol
    OperatorsVersusModel.chain = chain
    # Longer sequences than the profile's: an operator's life spans registration, work, epochs and claims.
    steps = 40 if settings.get_current_profile_name() == "thorough" else 30
    run_state_machine_as_test(
        OperatorsVersusModel, settings=settings(settings.default, stateful_step_count=steps)
    )

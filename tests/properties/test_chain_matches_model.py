"""Random sequences of burns, jobs, settlements, expiries, redemptions and price moves, run on the
contracts and on the pure-Python model side by side: every call must succeed or revert alike, with the same
results, and the invariants of DESIGN.md section 4 (1-3 and 6) must hold on the chain after every step."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test

from bme.economics.jobs import JobStatus
from bme.economics.model import JobTerms, Oracle, ProtocolModel, Settlement
from bme.economics.registry import RegistryModel
from bme.economics.status import Status
from bme.economics.window import available
from tests.conftest import CMP, GENESIS, OPERATOR_ENDPOINT, OPERATOR_STAKE, Deployed
from tests.properties.machine import GAS, ChainModelMachine

LISTED, UNLISTED = 1, 7
#: Usage caps a payer may commit to (zero is refused) and token counts a settlement may claim.
CAPS = st.sampled_from([0, 50, 100_000, 2**32 - 1])


class ChainVersusModel(ChainModelMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = ProtocolModel(
            now=self.now,
            window_start=self.p.window_start,
            epoch_genesis=self.p.escrow.epochGenesis(),
            epoch_length=self.p.escrow.epochLength(),
            oracle=Oracle(
                max_age=self.p.oracle.maxAge(),
                max_step_bps=self.p.oracle.maxStepBps(),
                step_period=self.p.oracle.stepPeriod(),
            ),
        )
        self.model.models[1] = (100_000, 200_000, True)
        for u in self.p.users:
            self.model.mint_genesis(u.address, GENESIS)
        for o in self.p.operators:
            self.model.mint_genesis(o.address, OPERATOR_STAKE)
        self.registry = RegistryModel(self.p.registry.address)
        self.spec_counter = 0
        self.job_ids: list[int] = []
        self.r = self.readers(
            {
                "bme": "BurnMintEquilibrium",
                "escrow": "JobEscrow",
                "token": "ComputeToken",
                "credit": "ComputeCredit",
            }
        )

    @initialize(price_cents=st.integers(20, 500))
    def start_price(self, price_cents: int) -> None:
        self.push_price(price_cents, 0)
        # Two operators are active and serve the listed model; the third never registers, so settlements to it
        # revert on both sides.
        for o in self.p.operators[:2]:
            self._tick()
            self.p.token.approve(self.p.registry.address, OPERATOR_STAKE, sender=o, gas_limit=GAS)
            self.both(
                lambda o=o: self.p.registry.register(
                    OPERATOR_STAKE, OPERATOR_ENDPOINT, [LISTED], sender=o, gas_limit=GAS
                ),
                lambda o=o: self.registry.register(
                    self.model, o.address, OPERATOR_STAKE, OPERATOR_ENDPOINT, (LISTED,)
                ),
            )

    @rule(dt=st.sampled_from([1, 5, 29, 31, 600, 3_600, 30_000, 90_000]))
    def advance_time(self, dt: int) -> None:
        self._tick(dt)

    @rule(price_cents=st.integers(5, 1_000), conf_bps=st.sampled_from([0, 0, 10, 75, 150, 151, 400]))
    def push_price(self, price_cents: int, conf_bps: int) -> None:
        price = price_cents * CMP // 100
        conf = price * conf_bps // 10_000
        self.both(
            lambda: self.p.oracle.pushPrice(price, conf, self.now, sender=self.p.deployer, gas_limit=GAS),
            lambda: self.model.push_price(price, conf, self.now),
        )

    @rule(user=st.integers(0, 3), tokens=st.integers(0, 5_000), min_factor=st.sampled_from([0, 0, 1, 2]))
    def burn(self, user: int, tokens: int, min_factor: int) -> None:
        u = self.p.users[user]
        amount = tokens * CMP // 10
        min_credits = min_factor * amount // 10**12
        receipt, credits = self.both(
            lambda: self.p.bme.burn(amount, min_credits, sender=u, gas_limit=GAS),
            lambda: self.model.burn(u.address, amount, min_credits),
        )
        if receipt is not None:
            assert receipt.events.filter(self.p.bme.CreditsMinted)[0].credits == credits

    def _spec(self) -> bytes:
        self.spec_counter += 1
        return self.spec_counter.to_bytes(32, "big")

    @rule(
        user=st.integers(0, 3),
        tokens=st.integers(0, 3_000),
        model_id=st.sampled_from([LISTED, LISTED, LISTED, UNLISTED]),
        ttl=st.sampled_from([0, 60, 599, 600, 3_600, 86_400, 86_401]),
        reuse=st.booleans(),
        caps=st.tuples(CAPS, CAPS),
    )
    def burn_for_job(
        self, user: int, tokens: int, model_id: int, ttl: int, reuse: bool, caps: tuple[int, int]
    ) -> None:
        u = self.p.users[user]
        amount = tokens * CMP // 10
        spec = self.spec_counter.to_bytes(32, "big") if reuse and self.spec_counter else self._spec()
        terms = JobTerms(model_id, spec, self.now + 1 + ttl, *caps)
        receipt, result = self.both(
            lambda: self.p.escrow.burnForJob(amount, 0, terms.as_tuple(), sender=u, gas_limit=GAS),
            lambda: self.model.burn_for_job(u.address, amount, 0, terms),
        )
        if receipt is not None:
            job_id, credits = result
            event = receipt.events.filter(self.p.escrow.JobOpened)[0]
            assert (event.jobId, event.maxCredits) == (job_id, credits)
            assert (event.maxInputTokens, event.maxOutputTokens) == caps
            self.job_ids.append(job_id)

    @rule(
        user=st.integers(0, 3),
        credits=st.integers(0, 50_000_000),
        ttl=st.sampled_from([60, 600, 3_600]),
        caps=st.tuples(CAPS, CAPS),
    )
    def open_job(self, user: int, credits: int, ttl: int, caps: tuple[int, int]) -> None:
        u = self.p.users[user]
        terms = JobTerms(LISTED, self._spec(), self.now + 1 + ttl, *caps)
        receipt, job_id = self.both(
            lambda: self.p.escrow.openJob(credits, terms.as_tuple(), sender=u, gas_limit=GAS),
            lambda: self.model.open_job(u.address, credits, terms),
        )
        if receipt is not None:
            self.job_ids.append(job_id)

    @rule(
        picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=5),
        tokens=st.lists(
            st.tuples(st.sampled_from([0, 1, 50, 51, 99_999, 100_000, 100_001]), st.integers(0, 100_001)),
            min_size=5,
            max_size=5,
        ),
        operator=st.integers(0, 2),
    )
    def settle(self, picks: list[int], tokens: list[tuple[int, int]], operator: int) -> None:
        if not self.job_ids:
            return
        op = self.p.operators[operator].address
        jobs = [self.job_ids[i % len(self.job_ids)] for i in picks]
        items = [(j, op, t_in, t_out, b"\x22" * 32) for j, (t_in, t_out) in zip(jobs, tokens, strict=False)]
        receipt, result = self.both(
            lambda: self.p.escrow.settle(items, sender=self.p.relayer, gas_limit=GAS),
            lambda: self.model.settle([Settlement(j, op, a, b) for j, op, a, b, _ in items], self.registry),
        )
        if receipt is not None:
            events = receipt.events.filter(self.p.escrow.JobSettled)
            assert [(e.charge, e.refund) for e in events] == result
            # Invariant 3: a charge never exceeds the reservation; charge and refund add up to it exactly.
            for e in events:
                reserved = self.model.jobs[e.jobId].max_credits
                assert e.charge <= reserved and e.charge + e.refund == reserved

    @rule(pick=st.integers(0, 10_000))
    def expire(self, pick: int) -> None:
        if not self.job_ids:
            return
        job = self.job_ids[pick % len(self.job_ids)]
        self.both(
            lambda: self.p.escrow.expire(job, sender=self.p.users[0], gas_limit=GAS),
            lambda: self.model.expire(job),
        )

    @rule(operator=st.integers(0, 2), share=st.sampled_from([0, 1, 2, 4, 8]))
    def redeem(self, operator: int, share: int) -> None:
        op = self.p.operators[operator]
        earned = self.model.earnings.get(op.address, 0)
        credits = earned // share if share else earned + 1
        receipt, tokens = self.both(
            lambda: self.p.bme.redeem(credits, 0, sender=op, gas_limit=GAS),
            lambda: self.model.redeem(op.address, credits, 0),
        )
        if receipt is not None:
            assert receipt.events.filter(self.p.bme.Redeemed)[0].tokensMinted == tokens

    @initialize(limit=st.sampled_from([10**16, 10**17, 10**18, 10_000_000 * CMP]))
    def start_mint_limit(self, limit: int) -> None:
        """Most examples run under a redemption window of the size of the redemptions here, so that it refuses
        some and frees up as time passes."""
        self.set_mint_limit(limit)

    @rule(limit=st.sampled_from([0, 10**15, 10**16, 10**17, CMP, 10**9 * CMP]))
    def set_mint_limit(self, limit: int) -> None:
        """Governance resizes redemptions' window through the timelock, whose delay passes first; a limit
        above the hard maximum is refused."""
        timelock, proposer = self.p.timelock, self.p.governor_proposer
        data = bytes(self.p.bme.setMintLimit.encode_input(limit))
        salt = self.now.to_bytes(32, "big")
        delay = int(timelock.getMinDelay())
        self._tick()
        bme = self.p.bme.address
        timelock.schedule(bme, 0, data, bytes(32), salt, delay, sender=proposer, gas_limit=GAS)
        self._tick(delay)
        self.both(
            lambda: timelock.execute(bme, 0, data, bytes(32), salt, sender=proposer, gas_limit=GAS),
            lambda: self.model.set_mint_limit(limit),
        )

    @rule()
    def sync_status(self) -> None:
        self.both(
            lambda: self.p.bme.syncStatus(sender=self.p.users[0], gas_limit=GAS), self.model.sync_status
        )

    # -- invariants, checked on the chain after every step --------------------------------

    @invariant()
    def state_matches_model(self) -> None:
        bme, escrow, token, credit = (self.r[k].functions for k in ("bme", "escrow", "token", "credit"))
        p, m = self.p, self.model
        assert bme.remintCredits().call() == m.remint_credits
        assert bme.outstandingCredits().call() == m.outstanding_credits
        assert bme.totalNewIssuance().call() == m.total_new_issuance
        assert bme.totalReissued().call() == m.total_reissued
        assert Status(bme.status().call()) == m.status
        assert Status(bme.collateralStatus().call()) == m.cr_status
        head = int(self.chain.blocks.head.timestamp)  # the time views are read at
        assert bme.mintAvailable().call() == available(m.window, head, m.params.mint_window, m.mint_limit)
        for a in [*p.users, *p.operators]:
            assert token.balanceOf(a.address).call() == m.cmp.get(a.address, 0)
            assert credit.balanceOf(a.address).call() == m.crd.get(a.address, 0)
        epoch = m.current_epoch
        assert escrow.epochWork(epoch).call() == m.epoch_work.get(epoch, 0)
        for op in p.operators:
            assert escrow.earningsOf(op.address).call() == m.earnings.get(op.address, 0)
            assert escrow.workOf(op.address, epoch).call() == m.work.get((op.address, epoch), 0)
        for job_id in self.job_ids[-3:]:
            assert JobStatus(escrow.jobOf(job_id).call()[4]) == m.jobs[job_id].status

    @invariant()
    def supply_is_minted_less_burned(self) -> None:
        # Invariant 1: CMP's supply is what was minted (genesis, redemptions) less what was burned.
        supply = self.r["token"].functions.totalSupply().call()
        assert supply == self.model.cmp_minted - self.model.cmp_burned

    @invariant()
    def every_credit_is_held_reserved_or_earned(self) -> None:
        # Invariant 2: balances + open reservations + earnings == all credits not yet redeemed.
        m = self.model
        crd_supply = self.r["credit"].functions.totalSupply().call()
        assert crd_supply + m.escrowed_credits + m.total_earnings == m.outstanding_credits


def test_chain_and_model_agree_on_random_sequences(protocol: Deployed, chain: Any) -> None:
    ChainVersusModel.p = protocol
    ChainVersusModel.chain = chain
    run_state_machine_as_test(ChainVersusModel)

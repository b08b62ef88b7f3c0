"""DESIGN.md section 4, invariants 1 to 3, checked after a small scripted sequence of every kind of call:
CMP's supply matches its mints and burns, and every credit is held by a payer, a job reservation or an
operator's earnings."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CMP, CRD, GENESIS, OPERATOR_STAKE, SUPPLY, Deployed
from tests.contracts.helpers import (
    JOB_OPEN,
    ZERO_ADDRESS,
    advance,
    head_time,
    push,
    result_hash,
    settlement,
    spec_hash,
    terms,
    with_active_operators,
)

# Also on the in-process provider (py-evm), a second EVM beside anvil: see `make test`.
pytestmark = pytest.mark.inprocess


@pytest.fixture(scope="module")
def protocol(protocol: Deployed) -> Deployed:
    """The shared deployment with its operators active (`with_active_operators`)."""
    return with_active_operators(protocol)


def all_events(event: Any, chain: Any) -> list[dict[str, Any]]:
    """Every `event` since genesis (the module's deployment included)."""
    return [dict(log.event_arguments) for log in event.range(0, chain.blocks.head.number + 1)]


def assert_credits_conserved(p: Deployed, chain: Any) -> None:
    """Every outstanding credit is in a payer's balance, an open job's reservation or an operator's earnings;
    a settled job's charge and refund add up to its reservation."""
    opened = all_events(p.escrow.JobOpened, chain)
    reserved = 0
    for job in opened:
        stored = p.escrow.jobOf(job["jobId"])
        assert stored.maxCredits == job["maxCredits"]
        if stored.status == JOB_OPEN:
            reserved += stored.maxCredits
    earnings = sum(p.escrow.earningsOf(op) for op in p.operators)
    assert p.credit.totalSupply() + reserved + earnings == p.bme.outstandingCredits()
    for settled in all_events(p.escrow.JobSettled, chain):
        job = next(j for j in opened if j["jobId"] == settled["jobId"])
        assert settled["charge"] + settled["refund"] == job["maxCredits"]


def test_invariants_hold_after_a_scripted_sequence(protocol: Deployed, chain: Any) -> None:
    p, (a, b, c, d), (op0, op1, _) = protocol, protocol.users, protocol.operators
    relayer = p.relayer

    # Burns, and jobs paid by burning, at two prices.
    push(p, chain, CMP)
    p.bme.burn(500 * CMP, 0, sender=a)
    assert_credits_conserved(p, chain)
    push(p, chain, 5 * CMP // 4)
    p.escrow.burnForJob(200 * CMP, 0, terms(spec_hash(1), head_time(chain) + 3600), sender=b)
    p.escrow.burnForJob(50 * CMP, 0, terms(spec_hash(2), head_time(chain) + 700), sender=c)
    job_a, job_b = p.escrow.jobIdFor(b, spec_hash(1)), p.escrow.jobIdFor(c, spec_hash(2))
    assert_credits_conserved(p, chain)

    # A job paid from a credit balance.
    p.escrow.openJob(100 * CRD, terms(spec_hash(3), head_time(chain) + 3600), sender=a)
    job_c = p.escrow.jobIdFor(a, spec_hash(3))
    assert_credits_conserved(p, chain)

    # One batch settles two jobs, with refunds.
    p.escrow.settle(
        [
            settlement(job_a, op0, 2_000_000, 1_000_000, result_hash(1)),  # 0.4 CRD
            settlement(job_c, op1, 0, 400_000_000, result_hash(3)),  # 80 CRD
        ],
        sender=relayer,
    )
    assert (p.escrow.earningsOf(op0), p.escrow.earningsOf(op1)) == (400_000, 80 * CRD)
    assert_credits_conserved(p, chain)

    # A job nobody served is refunded after its deadline.
    advance(chain, 701)
    p.escrow.expire(job_b, sender=d)
    assert_credits_conserved(p, chain)

    # Redemptions at a lower and then a higher price than the burns.
    push(p, chain, 4 * CMP // 5)
    p.bme.redeem(400_000, 0, sender=op0)
    push(p, chain, 8 * CMP // 5)
    p.bme.redeem(50 * CRD, 0, sender=op1)
    assert_credits_conserved(p, chain)

    # More burning, a job whose charge hits its reservation, and the last redemption.
    p.bme.burn(1000 * CMP, 0, sender=d)
    p.escrow.openJob(500 * CRD, terms(spec_hash(4), head_time(chain) + 3600), sender=d)
    job_d = p.escrow.jobIdFor(d, spec_hash(4))
    p.escrow.settle([settlement(job_d, op0, 4_000_000_000, 4_000_000_000, result_hash(4))], sender=relayer)
    assert p.escrow.earningsOf(op0) == 500 * CRD
    p.bme.redeem(30 * CRD, 0, sender=op1)
    p.bme.redeem(500 * CRD, 0, sender=op0)
    assert_credits_conserved(p, chain)
    assert p.escrow.earningsOf(op0) == p.escrow.earningsOf(op1) == 0

    # CMP: the supply is the genesis allocation, less every burn, plus every redemption.
    transfers = all_events(p.token.Transfer, chain)
    minted = sum(t["value"] for t in transfers if t["from"] == ZERO_ADDRESS)
    burned = sum(t["value"] for t in transfers if t["to"] == ZERO_ADDRESS)
    burns = all_events(p.bme.CreditsMinted, chain)
    redemptions = all_events(p.bme.Redeemed, chain)
    assert len(burns) == 4
    assert len(redemptions) == 4
    assert burned == sum(e["tokensBurned"] for e in burns) == 1750 * CMP
    redeemed = sum(e["tokensMinted"] for e in redemptions)
    assert minted == SUPPLY + redeemed
    assert p.token.totalSupply() == SUPPLY - burned + redeemed
    # Each redemption splits into re-issue and new issuance, and the totals agree.
    assert all(e["reissued"] + e["newlyIssued"] == e["tokensMinted"] for e in redemptions)
    assert p.bme.totalReissued() == sum(e["reissued"] for e in redemptions)
    assert p.bme.totalNewIssuance() == sum(e["newlyIssued"] for e in redemptions)
    assert p.bme.remintCredits() == burned - p.bme.totalReissued()
    # No CMP is minted except the genesis allocations (users' and operators' stakes) and to the redeeming
    # operators.
    mints = [(t["to"], t["value"]) for t in transfers if t["from"] == ZERO_ADDRESS]
    for allocation in [(u.address, GENESIS) for u in p.users] + [
        (o.address, OPERATOR_STAKE) for o in p.operators
    ]:
        mints.remove(allocation)
    assert sorted(to for to, _ in mints) == sorted(e["operator"] for e in redemptions)

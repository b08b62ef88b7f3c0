"""The job escrow and its model price book: opening jobs (burn, permit, credit balance), settling them in
batches, expiring them, pause, and governance of prices and durations."""

from __future__ import annotations

import math
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from tests.conftest import CMP, CRD, GENESIS, OPERATOR_ENDPOINT, OPERATOR_STAKE, Deployed
from tests.contracts.helpers import (
    JOB_EXPIRED,
    JOB_NONE,
    JOB_OPEN,
    JOB_SETTLED,
    MAX_JOB_DURATION,
    MIN_JOB_DURATION,
    MODEL,
    UINT32_MAX,
    ZERO_ADDRESS,
    Governance,
    advance,
    call_reverts,
    event_args,
    head_time,
    next_tx_at,
    normalised,
    push,
    result_hash,
    reverts,
    settlement,
    sign_permit,
    spec_hash,
    terms,
    with_active_operators,
)

UINT40_MAX = 2**40 - 1


@pytest.fixture(scope="module")
def protocol(protocol: Deployed) -> Deployed:
    """The shared deployment with its operators active (`with_active_operators`)."""
    return with_active_operators(protocol)


def open_by_burn(
    p: Deployed, chain: Any, payer: Any, n: int, tokens: int = 100 * CMP, ttl: int = 3600
) -> int:
    """`payer` burns `tokens` for job `n`, due `ttl` seconds from now; returns its id. Needs a fresh price."""
    p.escrow.burnForJob(tokens, 0, terms(spec_hash(n), head_time(chain) + ttl), sender=payer)
    return int(p.escrow.jobIdFor(payer, spec_hash(n)))


def job_status(p: Deployed, job_id: int) -> int:
    return int(p.escrow.jobOf(job_id).status)


# ---------------------------------------------------------------- opening


def test_job_id_is_the_hash_of_payer_and_spec_hash(protocol: Deployed) -> None:
    payer, spec = protocol.users[0], spec_hash(1)
    expected = int.from_bytes(keccak(encode(["address", "bytes32"], [payer.address, spec])), "big")
    assert protocol.escrow.jobIdFor(payer, spec) == expected
    assert protocol.escrow.jobIdFor(protocol.users[1], spec) != expected


def test_burn_for_job_opens_a_job_reserving_all_the_credits(protocol: Deployed, chain: Any) -> None:
    escrow, payer, spec = protocol.escrow, protocol.users[0], spec_hash(1)
    push(protocol, chain, CMP)
    deadline = head_time(chain) + 3600

    tx = escrow.burnForJob(100 * CMP, 99_750_000, terms(spec, deadline), sender=payer)

    job_id = escrow.jobIdFor(payer, spec)
    assert event_args(tx, escrow.JobOpened) == [
        normalised(
            jobId=job_id,
            payer=payer,
            modelId=MODEL,
            maxCredits=99_750_000,
            tokensBurned=100 * CMP,
            deadline=deadline,
            specHash=spec,
            maxInputTokens=UINT32_MAX,
            maxOutputTokens=UINT32_MAX,
        )
    ]
    assert event_args(tx, protocol.bme.CreditsMinted) == [
        normalised(payer=payer, recipient=escrow, tokensBurned=100 * CMP, credits=99_750_000, price=CMP)
    ]
    assert tuple(escrow.jobOf(job_id)) == (
        payer.address,
        MODEL,
        deadline,
        99_750_000,
        JOB_OPEN,
        UINT32_MAX,
        UINT32_MAX,
    )
    # The reservation lives in the escrow's accounting: no CRD token is minted for it.
    assert protocol.credit.totalSupply() == 0
    assert protocol.credit.balanceOf(escrow) == 0
    assert protocol.bme.outstandingCredits() == 99_750_000
    assert protocol.bme.remintCredits() == 100 * CMP
    assert protocol.token.balanceOf(payer) == GENESIS - 100 * CMP


def test_burn_for_job_below_callers_min_credits_reverts(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    with reverts(protocol.bme.BmeSlippageExceeded, actual=99_750_000, minimum=100 * CRD):
        protocol.escrow.burnForJob(
            100 * CMP, 100 * CRD, terms(spec_hash(1), head_time(chain) + 3600), sender=protocol.users[0]
        )


def test_burn_for_job_below_minimum_mint_reverts(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    with reverts(protocol.bme.BmeBelowMinimumMint, credits=9_975_000, minimum=10 * CRD):
        protocol.escrow.burnForJob(
            10 * CMP, 0, terms(spec_hash(1), head_time(chain) + 3600), sender=protocol.users[0]
        )


def test_burn_for_job_with_permit_needs_no_prior_approval(
    protocol: Deployed, chain: Any, wallet: Any
) -> None:
    token, escrow = protocol.token, protocol.escrow
    token.transfer(wallet, 100 * CMP, sender=protocol.users[0])
    assert token.allowance(wallet, protocol.bme) == 0
    push(protocol, chain, CMP)
    permit_deadline, deadline = head_time(chain) + 600, head_time(chain) + 3600
    v, r, s = sign_permit(token, wallet, protocol.bme, 100 * CMP, permit_deadline, chain.chain_id)

    tx = escrow.burnForJobWithPermit(
        100 * CMP, 0, terms(spec_hash(1), deadline), permit_deadline, v, r, s, sender=wallet
    )

    [opened] = event_args(tx, escrow.JobOpened)
    assert (opened["payer"], opened["maxCredits"], opened["tokensBurned"]) == (
        wallet.address,
        99_750_000,
        100 * CMP,
    )
    assert job_status(protocol, escrow.jobIdFor(wallet, spec_hash(1))) == JOB_OPEN
    assert token.nonces(wallet) == 1
    assert token.allowance(wallet, protocol.bme) == 0
    assert token.balanceOf(wallet) == 0


def test_burn_for_job_with_front_run_permit_still_succeeds(
    protocol: Deployed, chain: Any, wallet: Any
) -> None:
    token, escrow = protocol.token, protocol.escrow
    token.transfer(wallet, 100 * CMP, sender=protocol.users[0])
    push(protocol, chain, CMP)
    permit_deadline, deadline = head_time(chain) + 600, head_time(chain) + 3600
    v, r, s = sign_permit(token, wallet, protocol.bme, 100 * CMP, permit_deadline, chain.chain_id)
    # Someone copies the permit from the mempool and submits it first: the allowance is set, the nonce used.
    token.permit(wallet, protocol.bme, 100 * CMP, permit_deadline, v, r, s, sender=protocol.users[2])
    assert token.nonces(wallet) == 1

    tx = escrow.burnForJobWithPermit(
        100 * CMP, 0, terms(spec_hash(1), deadline), permit_deadline, v, r, s, sender=wallet
    )

    [opened] = event_args(tx, escrow.JobOpened)
    assert (opened["payer"], opened["maxCredits"]) == (wallet.address, 99_750_000)
    assert token.nonces(wallet) == 1
    assert token.balanceOf(wallet) == 0


def test_burn_for_job_with_bad_permit_and_no_allowance_reverts(
    protocol: Deployed, chain: Any, wallet: Any
) -> None:
    token = protocol.token
    token.transfer(wallet, 100 * CMP, sender=protocol.users[0])
    push(protocol, chain, CMP)
    permit_deadline, deadline = head_time(chain) + 600, head_time(chain) + 3600
    # Signed for 50 CMP but used for 100: the permit fails, and without an allowance so does the burn.
    v, r, s = sign_permit(token, wallet, protocol.bme, 50 * CMP, permit_deadline, chain.chain_id)
    with reverts(token.ERC20InsufficientAllowance, spender=protocol.bme, allowance=0, needed=100 * CMP):
        protocol.escrow.burnForJobWithPermit(
            100 * CMP, 0, terms(spec_hash(1), deadline), permit_deadline, v, r, s, sender=wallet
        )
    assert token.nonces(wallet) == 0


def test_open_job_from_a_credit_balance(protocol: Deployed, chain: Any) -> None:
    escrow, payer, spec = protocol.escrow, protocol.users[0], spec_hash(1)
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    deadline = head_time(chain) + 3600

    tx = escrow.openJob(50 * CRD, terms(spec, deadline), sender=payer)

    job_id = escrow.jobIdFor(payer, spec)
    assert event_args(tx, escrow.JobOpened) == [
        normalised(
            jobId=job_id,
            payer=payer,
            modelId=MODEL,
            maxCredits=50 * CRD,
            tokensBurned=0,
            deadline=deadline,
            specHash=spec,
            maxInputTokens=UINT32_MAX,
            maxOutputTokens=UINT32_MAX,
        )
    ]
    assert event_args(tx, protocol.credit.Transfer) == [
        normalised(**{"from": payer, "to": ZERO_ADDRESS, "value": 50 * CRD})
    ]
    assert tuple(escrow.jobOf(job_id)) == (
        payer.address,
        MODEL,
        deadline,
        50 * CRD,
        JOB_OPEN,
        UINT32_MAX,
        UINT32_MAX,
    )
    assert protocol.credit.balanceOf(payer) == 49_750_000
    assert protocol.credit.totalSupply() == 49_750_000
    # Moving credits from a balance into a reservation changes nothing outstanding.
    assert protocol.bme.outstandingCredits() == 99_750_000


def test_open_job_beyond_the_credit_balance_reverts(protocol: Deployed, chain: Any) -> None:
    payer = protocol.users[0]
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    with reverts(
        protocol.credit.ERC20InsufficientBalance, sender=payer, balance=99_750_000, needed=100 * CRD
    ):
        protocol.escrow.openJob(100 * CRD, terms(spec_hash(1), head_time(chain) + 3600), sender=payer)


def test_open_job_with_zero_credits_reverts(protocol: Deployed, chain: Any) -> None:
    with reverts(protocol.escrow.JobEscrowZeroAmount):
        protocol.escrow.openJob(0, terms(spec_hash(1), head_time(chain) + 3600), sender=protocol.users[0])


def test_open_job_with_a_used_spec_hash_reverts(protocol: Deployed, chain: Any) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1)
    deadline = head_time(chain) + 3600
    with reverts(escrow.JobEscrowJobExists, jobId=job_id):
        escrow.burnForJob(100 * CMP, 0, terms(spec_hash(1), deadline), sender=payer)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    with reverts(escrow.JobEscrowJobExists, jobId=job_id):
        escrow.openJob(10 * CRD, terms(spec_hash(1), deadline), sender=payer)
    # The same commitment from another payer is another job.
    open_by_burn(protocol, chain, protocol.users[1], 1)
    assert job_status(protocol, escrow.jobIdFor(protocol.users[1], spec_hash(1))) == JOB_OPEN


def test_open_job_with_a_spec_hash_of_a_closed_job_reverts(protocol: Deployed, chain: Any) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1)
    escrow.settle(
        [settlement(job_id, protocol.operators[0], 10, 10, result_hash(1))], sender=protocol.relayer
    )
    with reverts(escrow.JobEscrowJobExists, jobId=job_id):
        escrow.openJob(10 * CRD, terms(spec_hash(1), head_time(chain) + 3600), sender=payer)


def test_open_job_for_an_unlisted_model_reverts(protocol: Deployed, chain: Any) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    deadline = head_time(chain) + 3600
    with reverts(escrow.JobEscrowModelNotListed, modelId=2):
        escrow.burnForJob(100 * CMP, 0, terms(spec_hash(1), deadline, model=2), sender=payer)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    with reverts(escrow.JobEscrowModelNotListed, modelId=0):
        escrow.openJob(10 * CRD, terms(spec_hash(1), deadline, model=0), sender=payer)


@pytest.mark.parametrize("offset", [-1, 0, MIN_JOB_DURATION - 1, MAX_JOB_DURATION + 1])
def test_open_job_with_a_deadline_out_of_range_reverts(protocol: Deployed, chain: Any, offset: int) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    now = head_time(chain) + 5
    next_tx_at(chain, now)
    with reverts(
        escrow.JobEscrowInvalidDeadline,
        deadline=now + offset,
        earliest=now + MIN_JOB_DURATION,
        latest=now + MAX_JOB_DURATION,
    ):
        escrow.openJob(10 * CRD, terms(spec_hash(1), now + offset), sender=payer)


def test_burn_for_job_with_a_deadline_beyond_the_max_duration_reverts(protocol: Deployed, chain: Any) -> None:
    now = head_time(chain) + 5
    price_time = now - 1
    next_tx_at(chain, price_time)
    protocol.oracle.pushPrice(CMP, 0, price_time, sender=protocol.deployer)
    next_tx_at(chain, now)
    with reverts(
        protocol.escrow.JobEscrowInvalidDeadline,
        deadline=now + MAX_JOB_DURATION + 1,
        earliest=now + MIN_JOB_DURATION,
        latest=now + MAX_JOB_DURATION,
    ):
        protocol.escrow.burnForJob(
            100 * CMP, 0, terms(spec_hash(1), now + MAX_JOB_DURATION + 1), sender=protocol.users[0]
        )
    assert protocol.bme.remintCredits() == 0


def test_open_job_with_the_longest_deadline_is_accepted(protocol: Deployed, chain: Any) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    now = head_time(chain) + 5
    next_tx_at(chain, now)
    escrow.openJob(10 * CRD, terms(spec_hash(1), now + MAX_JOB_DURATION), sender=payer)
    assert escrow.jobOf(escrow.jobIdFor(payer, spec_hash(1))).deadline == now + MAX_JOB_DURATION


def test_open_job_reserving_more_than_uint40_reverts(protocol: Deployed, chain: Any) -> None:
    with reverts(protocol.escrow.JobEscrowMaxCreditsTooLarge, maxCredits=UINT40_MAX + 1):
        protocol.escrow.openJob(
            UINT40_MAX + 1, terms(spec_hash(1), head_time(chain) + 3600), sender=protocol.users[0]
        )


def test_burn_for_job_giving_more_than_uint40_credits_reverts(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, 2 * CMP)
    # 600,000 CMP at $2 less 25 bps: 1,197,000 CRD, above the 1,099,511.627775 CRD a job may reserve.
    with reverts(protocol.escrow.JobEscrowMaxCreditsTooLarge, maxCredits=1_197_000_000_000):
        protocol.escrow.burnForJob(
            600_000 * CMP, 0, terms(spec_hash(1), head_time(chain) + 3600), sender=protocol.users[0]
        )
    assert protocol.token.balanceOf(protocol.users[0]) == GENESIS
    assert protocol.bme.outstandingCredits() == 0


# ---------------------------------------------------------------- settling


@pytest.mark.parametrize("caller", ["user", "guardian"])
def test_settle_by_non_relayer_reverts(protocol: Deployed, chain: Any, caller: str) -> None:
    account = protocol.users[1] if caller == "user" else protocol.deployer
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    with reverts(
        protocol.escrow.AccessControlUnauthorizedAccount,
        account=account,
        neededRole=protocol.escrow.RELAYER_ROLE(),
    ):
        protocol.escrow.settle([settlement(job_id, account, 1, 1, result_hash(1))], sender=account)
    assert job_status(protocol, job_id) == JOB_OPEN


def test_settle_charges_the_price_book_rounded_up_and_refunds_the_rest(
    protocol: Deployed, chain: Any
) -> None:
    escrow, payer, operator = protocol.escrow, protocol.users[0], protocol.operators[0]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1)

    tx = escrow.settle([settlement(job_id, operator, 1234, 567, result_hash(1))], sender=protocol.relayer)

    # 1234 * 0.1 + 567 * 0.2 = 236.8 credit units, rounded up to 237.
    assert event_args(tx, escrow.JobSettled) == [
        normalised(
            jobId=job_id,
            operator=operator,
            inputTokens=1234,
            outputTokens=567,
            charge=237,
            refund=99_749_763,
            resultHash=result_hash(1),
        )
    ]
    assert event_args(tx, protocol.credit.Transfer) == [
        normalised(**{"from": ZERO_ADDRESS, "to": payer, "value": 99_749_763})
    ]
    assert job_status(protocol, job_id) == JOB_SETTLED
    assert escrow.earningsOf(operator) == 237
    assert protocol.credit.balanceOf(payer) == 99_749_763
    assert protocol.bme.outstandingCredits() == 99_750_000


def test_settle_charge_is_capped_by_the_reservation(protocol: Deployed, chain: Any) -> None:
    escrow, payer, operator = protocol.escrow, protocol.users[0], protocol.operators[0]
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    escrow.openJob(10 * CRD, terms(spec_hash(1), head_time(chain) + 3600), sender=payer)
    job_id = escrow.jobIdFor(payer, spec_hash(1))
    # 4e9 input and output tokens would cost 1,200 CRD; the job reserved 10.
    assert escrow.costOf(MODEL, 4_000_000_000, 4_000_000_000) == 1_200 * CRD

    tx = escrow.settle(
        [settlement(job_id, operator, 4_000_000_000, 4_000_000_000, result_hash(1))], sender=protocol.relayer
    )

    [settled] = event_args(tx, escrow.JobSettled)
    assert (settled["charge"], settled["refund"]) == (10 * CRD, 0)
    assert event_args(tx, protocol.credit.Transfer) == []  # nothing to refund
    assert escrow.earningsOf(operator) == 10 * CRD
    assert protocol.credit.balanceOf(payer) == 89_750_000


def test_settle_a_batch_of_several_jobs(protocol: Deployed, chain: Any) -> None:
    escrow, (a, b), (op1, op2) = protocol.escrow, protocol.users[:2], protocol.operators[:2]
    push(protocol, chain, CMP)
    jobs = [
        open_by_burn(protocol, chain, a, 1),
        open_by_burn(protocol, chain, b, 2, tokens=50 * CMP),
        open_by_burn(protocol, chain, a, 3, tokens=20 * CMP),
    ]
    batch = [
        settlement(jobs[0], op1, 1_000_000, 0, result_hash(1)),  # 0.1 CRD
        settlement(jobs[1], op2, 0, 1_000_000, result_hash(2)),  # 0.2 CRD
        settlement(jobs[2], op1, 3, 7, result_hash(3)),  # 1.7 units, rounded up to 2
    ]

    tx = escrow.settle(batch, sender=protocol.relayer)

    settled = event_args(tx, escrow.JobSettled)
    assert [(e["jobId"], e["operator"], e["charge"], e["refund"], e["resultHash"]) for e in settled] == [
        (jobs[0], op1.address, 100_000, 99_650_000, result_hash(1)),
        (jobs[1], op2.address, 200_000, 49_675_000, result_hash(2)),
        (jobs[2], op1.address, 2, 19_949_998, result_hash(3)),
    ]
    assert [job_status(protocol, j) for j in jobs] == [JOB_SETTLED] * 3
    assert escrow.earningsOf(op1) == 100_002
    assert escrow.earningsOf(op2) == 200_000
    assert protocol.credit.balanceOf(a) == 99_650_000 + 19_949_998
    assert protocol.credit.balanceOf(b) == 49_675_000


def test_settle_twice_reverts_with_status_settled(protocol: Deployed, chain: Any) -> None:
    escrow, operator = protocol.escrow, protocol.operators[0]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    escrow.settle([settlement(job_id, operator, 10, 10, result_hash(1))], sender=protocol.relayer)
    with reverts(escrow.JobEscrowJobNotOpen, jobId=job_id, status=JOB_SETTLED):
        escrow.settle([settlement(job_id, operator, 10, 10, result_hash(1))], sender=protocol.relayer)
    assert escrow.earningsOf(operator) == 3


def test_settle_batch_containing_a_settled_job_reverts_as_a_whole(protocol: Deployed, chain: Any) -> None:
    escrow, operator, payer = protocol.escrow, protocol.operators[0], protocol.users[0]
    push(protocol, chain, CMP)
    a, b, c = (open_by_burn(protocol, chain, payer, n) for n in (1, 2, 3))
    escrow.settle([settlement(a, operator, 10, 10, result_hash(1))], sender=protocol.relayer)
    balance, earnings = protocol.credit.balanceOf(payer), escrow.earningsOf(operator)

    batch = [settlement(j, operator, 10, 10, result_hash(j)) for j in (b, a, c)]
    with reverts(escrow.JobEscrowJobNotOpen, jobId=a, status=JOB_SETTLED):
        escrow.settle(batch, sender=protocol.relayer)

    assert [job_status(protocol, j) for j in (a, b, c)] == [JOB_SETTLED, JOB_OPEN, JOB_OPEN]
    assert protocol.credit.balanceOf(payer) == balance
    assert escrow.earningsOf(operator) == earnings


def test_settle_unknown_job_reverts_with_status_none(protocol: Deployed) -> None:
    unknown = protocol.escrow.jobIdFor(protocol.users[0], spec_hash(404))
    with reverts(protocol.escrow.JobEscrowJobNotOpen, jobId=unknown, status=JOB_NONE):
        protocol.escrow.settle(
            [settlement(unknown, protocol.operators[0], 1, 1, result_hash(1))], sender=protocol.relayer
        )


def test_settle_with_zero_operator_reverts(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    with reverts(protocol.escrow.JobEscrowZeroOperator, jobId=job_id):
        protocol.escrow.settle(
            [settlement(job_id, ZERO_ADDRESS, 1, 1, result_hash(1))], sender=protocol.relayer
        )


def test_settle_at_the_deadline_succeeds(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    deadline = protocol.escrow.jobOf(job_id).deadline
    next_tx_at(chain, deadline)
    protocol.escrow.settle(
        [settlement(job_id, protocol.operators[0], 10, 10, result_hash(1))], sender=protocol.relayer
    )
    assert job_status(protocol, job_id) == JOB_SETTLED


def test_settle_after_the_deadline_reverts(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    deadline = protocol.escrow.jobOf(job_id).deadline
    next_tx_at(chain, deadline + 1)
    with reverts(protocol.escrow.JobEscrowDeadlinePassed, jobId=job_id, deadline=deadline):
        protocol.escrow.settle(
            [settlement(job_id, protocol.operators[0], 10, 10, result_hash(1))], sender=protocol.relayer
        )
    assert job_status(protocol, job_id) == JOB_OPEN


# ---------------------------------------------------------------- expiry


def test_expire_at_the_deadline_reverts(protocol: Deployed, chain: Any) -> None:
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    deadline = protocol.escrow.jobOf(job_id).deadline
    next_tx_at(chain, deadline)
    with reverts(protocol.escrow.JobEscrowDeadlineNotReached, jobId=job_id, deadline=deadline):
        protocol.escrow.expire(job_id, sender=protocol.users[0])
    assert job_status(protocol, job_id) == JOB_OPEN


def test_expire_after_the_deadline_refunds_the_full_reservation(protocol: Deployed, chain: Any) -> None:
    escrow, payer, stranger = protocol.escrow, protocol.users[0], protocol.users[3]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1)
    deadline = escrow.jobOf(job_id).deadline
    next_tx_at(chain, deadline + 1)

    # Anyone may expire it; the refund goes to the payer.
    tx = escrow.expire(job_id, sender=stranger)

    assert event_args(tx, escrow.JobExpired) == [normalised(jobId=job_id, payer=payer, refund=99_750_000)]
    assert job_status(protocol, job_id) == JOB_EXPIRED
    assert protocol.credit.balanceOf(payer) == 99_750_000
    assert protocol.credit.balanceOf(stranger) == 0
    assert protocol.bme.outstandingCredits() == 99_750_000

    with reverts(escrow.JobEscrowJobNotOpen, jobId=job_id, status=JOB_EXPIRED):
        escrow.settle(
            [settlement(job_id, protocol.operators[0], 1, 1, result_hash(1))], sender=protocol.relayer
        )
    with reverts(escrow.JobEscrowJobNotOpen, jobId=job_id, status=JOB_EXPIRED):
        escrow.expire(job_id, sender=payer)
    assert protocol.credit.balanceOf(payer) == 99_750_000


def test_expire_a_settled_job_reverts(protocol: Deployed, chain: Any) -> None:
    escrow = protocol.escrow
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    escrow.settle(
        [settlement(job_id, protocol.operators[0], 10, 10, result_hash(1))], sender=protocol.relayer
    )
    next_tx_at(chain, escrow.jobOf(job_id).deadline + 1)
    with reverts(escrow.JobEscrowJobNotOpen, jobId=job_id, status=JOB_SETTLED):
        escrow.expire(job_id, sender=protocol.users[0])


# ---------------------------------------------------------------- pause


def test_pause_stops_opening_but_not_settle_or_expire(protocol: Deployed, chain: Any, wallet: Any) -> None:
    escrow, payer, guardian = protocol.escrow, protocol.users[0], protocol.deployer
    push(protocol, chain, CMP)
    to_settle = open_by_burn(protocol, chain, payer, 1)
    to_expire = open_by_burn(protocol, chain, payer, 2, ttl=MIN_JOB_DURATION + 60)
    protocol.bme.burn(100 * CMP, 0, sender=payer)

    tx = escrow.pause(sender=guardian)

    assert event_args(tx, escrow.Paused) == [normalised(account=guardian)]
    deadline = head_time(chain) + 3600
    with reverts(escrow.EnforcedPause):
        escrow.openJob(10 * CRD, terms(spec_hash(3), deadline), sender=payer)
    with reverts(escrow.EnforcedPause):
        escrow.burnForJob(100 * CMP, 0, terms(spec_hash(3), deadline), sender=payer)
    v, r, s = sign_permit(protocol.token, wallet, protocol.bme, 100 * CMP, deadline, chain.chain_id)
    with reverts(escrow.EnforcedPause):
        escrow.burnForJobWithPermit(
            100 * CMP, 0, terms(spec_hash(3), deadline), deadline, v, r, s, sender=wallet
        )

    escrow.settle(
        [settlement(to_settle, protocol.operators[0], 10, 10, result_hash(1))], sender=protocol.relayer
    )
    next_tx_at(chain, escrow.jobOf(to_expire).deadline + 1)
    escrow.expire(to_expire, sender=payer)
    assert (job_status(protocol, to_settle), job_status(protocol, to_expire)) == (JOB_SETTLED, JOB_EXPIRED)


def test_pause_escrow_by_non_guardian_reverts(protocol: Deployed) -> None:
    user = protocol.users[0]
    with reverts(
        protocol.escrow.AccessControlUnauthorizedAccount,
        account=user,
        neededRole=protocol.escrow.PAUSER_ROLE(),
    ):
        protocol.escrow.pause(sender=user)


def test_unpause_escrow_only_by_governance(protocol: Deployed, chain: Any, gov: Governance) -> None:
    escrow, guardian, payer = protocol.escrow, protocol.deployer, protocol.users[0]
    escrow.pause(sender=guardian)
    with reverts(
        escrow.AccessControlUnauthorizedAccount, account=guardian, neededRole=escrow.GOVERNOR_ROLE()
    ):
        escrow.unpause(sender=guardian)
    gov.execute(escrow.unpause)
    assert not escrow.paused()
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1)
    assert job_status(protocol, job_id) == JOB_OPEN


# ---------------------------------------------------------------- earnings and governance


def test_debit_earnings_by_anyone_but_the_bme_core_reverts(protocol: Deployed, chain: Any) -> None:
    escrow, operator = protocol.escrow, protocol.operators[0]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, protocol.users[0], 1)
    escrow.settle([settlement(job_id, operator, 0, 500, result_hash(1))], sender=protocol.relayer)
    with reverts(escrow.JobEscrowNotBme, caller=operator):
        escrow.debitEarnings(operator, 100, sender=operator)
    assert escrow.earningsOf(operator) == 100


def test_set_max_job_duration_through_timelock(protocol: Deployed, chain: Any, gov: Governance) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    with reverts(escrow.AccessControlUnauthorizedAccount, account=payer, neededRole=escrow.GOVERNOR_ROLE()):
        escrow.setMaxJobDuration(7 * 86_400, sender=payer)

    tx = gov.execute(escrow.setMaxJobDuration, 7 * 86_400)

    assert event_args(tx, escrow.MaxJobDurationUpdated) == [normalised(maxJobDuration=7 * 86_400)]
    assert escrow.maxJobDuration() == 7 * 86_400
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1, ttl=7 * 86_400 - 60)
    assert job_status(protocol, job_id) == JOB_OPEN


@pytest.mark.parametrize("maximum", [0, MIN_JOB_DURATION])
def test_set_max_job_duration_at_or_below_the_minimum_reverts(
    protocol: Deployed, gov: Governance, maximum: int
) -> None:
    with reverts(
        protocol.escrow.JobEscrowInvalidJobDurations, minJobDuration=MIN_JOB_DURATION, maxJobDuration=maximum
    ):
        gov.execute(protocol.escrow.setMaxJobDuration, maximum)
    assert protocol.escrow.maxJobDuration() == MAX_JOB_DURATION


def test_set_min_job_duration_through_timelock(protocol: Deployed, chain: Any, gov: Governance) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    assert escrow.minJobDuration() == MIN_JOB_DURATION
    with reverts(escrow.AccessControlUnauthorizedAccount, account=payer, neededRole=escrow.GOVERNOR_ROLE()):
        escrow.setMinJobDuration(1_800, sender=payer)

    tx = gov.execute(escrow.setMinJobDuration, 1_800)

    assert event_args(tx, escrow.MinJobDurationUpdated) == [normalised(minJobDuration=1_800)]
    assert escrow.minJobDuration() == 1_800
    push(protocol, chain, CMP)
    now = head_time(chain) + 5
    next_tx_at(chain, now)
    with reverts(
        escrow.JobEscrowInvalidDeadline,
        deadline=now + 1_799,
        earliest=now + 1_800,
        latest=now + MAX_JOB_DURATION,
    ):
        escrow.burnForJob(100 * CMP, 0, terms(spec_hash(1), now + 1_799), sender=payer)
    next_tx_at(chain, now + 1)
    escrow.burnForJob(100 * CMP, 0, terms(spec_hash(1), now + 1 + 1_800), sender=payer)


@pytest.mark.parametrize("minimum", [0, MAX_JOB_DURATION, MAX_JOB_DURATION + 1])
def test_set_min_job_duration_out_of_bounds_reverts(
    protocol: Deployed, gov: Governance, minimum: int
) -> None:
    with reverts(
        protocol.escrow.JobEscrowInvalidJobDurations, minJobDuration=minimum, maxJobDuration=MAX_JOB_DURATION
    ):
        gov.execute(protocol.escrow.setMinJobDuration, minimum)
    assert protocol.escrow.minJobDuration() == MIN_JOB_DURATION


# ---------------------------------------------------------------- attacks on the money bounds


def test_payer_cannot_open_a_job_due_before_the_minimum_duration(protocol: Deployed, chain: Any) -> None:
    """The payer's attack: a deadline just after the answer arrives, then a full refund by `expire`. The
    tightest deadline it may set is `minJobDuration` away, and the job cannot be expired before then."""
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    for ahead in (1, 30, MIN_JOB_DURATION - 1):
        now = head_time(chain) + 5
        next_tx_at(chain, now)
        with reverts(
            escrow.JobEscrowInvalidDeadline,
            deadline=now + ahead,
            earliest=now + MIN_JOB_DURATION,
            latest=now + MAX_JOB_DURATION,
        ):
            escrow.openJob(10 * CRD, terms(spec_hash(1), now + ahead), sender=payer)
    assert job_status(protocol, escrow.jobIdFor(payer, spec_hash(1))) == JOB_NONE
    # The tightest deadline allowed: the job stays open (and settleable) for the whole minimum duration.
    now = head_time(chain) + 5
    next_tx_at(chain, now)
    escrow.openJob(10 * CRD, terms(spec_hash(1), now + MIN_JOB_DURATION), sender=payer)
    job_id = escrow.jobIdFor(payer, spec_hash(1))
    next_tx_at(chain, now + MIN_JOB_DURATION - 10)
    with reverts(escrow.JobEscrowDeadlineNotReached, jobId=job_id, deadline=now + MIN_JOB_DURATION):
        escrow.expire(job_id, sender=payer)
    next_tx_at(chain, now + MIN_JOB_DURATION - 5)
    escrow.settle(
        [settlement(job_id, protocol.operators[0], 10, 10, result_hash(1))], sender=protocol.relayer
    )
    assert job_status(protocol, job_id) == JOB_SETTLED


@pytest.mark.parametrize("caps", [(0, 100), (100, 0), (0, 0)])
def test_open_job_with_a_zero_usage_cap_reverts(
    protocol: Deployed, chain: Any, caps: tuple[int, int]
) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    job_terms = terms(spec_hash(1), head_time(chain) + 3600, max_input=caps[0], max_output=caps[1])
    with reverts(escrow.JobEscrowZeroUsageCap, maxInputTokens=caps[0], maxOutputTokens=caps[1]):
        escrow.burnForJob(100 * CMP, 0, job_terms, sender=payer)
    protocol.bme.burn(100 * CMP, 0, sender=payer)
    with reverts(escrow.JobEscrowZeroUsageCap, maxInputTokens=caps[0], maxOutputTokens=caps[1]):
        escrow.openJob(10 * CRD, job_terms, sender=payer)


def test_job_carries_the_payers_usage_caps(protocol: Deployed, chain: Any) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    push(protocol, chain, CMP)
    deadline = head_time(chain) + 3600
    tx = escrow.burnForJob(
        100 * CMP, 0, terms(spec_hash(1), deadline, max_input=300, max_output=64), sender=payer
    )
    [opened] = event_args(tx, escrow.JobOpened)
    assert (opened["maxInputTokens"], opened["maxOutputTokens"]) == (300, 64)
    job = escrow.jobOf(escrow.jobIdFor(payer, spec_hash(1)))
    assert (job.maxInputTokens, job.maxOutputTokens, job.deadline) == (300, 64, deadline)


@pytest.mark.parametrize("counts", [(301, 64), (300, 65), (4_000_000_000, 4_000_000_000)])
def test_relayer_settling_above_the_payers_caps_reverts(
    protocol: Deployed, chain: Any, counts: tuple[int, int]
) -> None:
    """The relayer key's attack: charge a job for more tokens than its request could use. Without caps the
    escrow charged up to the whole reservation (`test_settle_charge_is_capped_by_the_reservation`)."""
    escrow, payer, operator = protocol.escrow, protocol.users[0], protocol.operators[0]
    push(protocol, chain, CMP)
    deadline = head_time(chain) + 3600
    escrow.burnForJob(100 * CMP, 0, terms(spec_hash(1), deadline, max_input=300, max_output=64), sender=payer)
    job_id = escrow.jobIdFor(payer, spec_hash(1))
    honest = settlement(job_id, operator, 300, 64, result_hash(1))
    inflated = settlement(job_id, operator, *counts, result_hash(1))

    with reverts(
        escrow.JobEscrowUsageAboveCaps,
        jobId=job_id,
        inputTokens=counts[0],
        outputTokens=counts[1],
        maxInputTokens=300,
        maxOutputTokens=64,
    ):
        escrow.settle([inflated], sender=protocol.relayer)
    assert job_status(protocol, job_id) == JOB_OPEN
    assert escrow.earningsOf(operator) == 0

    # Counts at the caps settle: 300 * 0.1 + 64 * 0.2 = 42.8 credit units, rounded up.
    tx = escrow.settle([honest], sender=protocol.relayer)
    [settled] = event_args(tx, escrow.JobSettled)
    assert (settled["charge"], settled["refund"]) == (43, 99_750_000 - 43)


def test_one_settlement_above_its_caps_reverts_the_whole_batch(protocol: Deployed, chain: Any) -> None:
    escrow, payer, operator = protocol.escrow, protocol.users[0], protocol.operators[0]
    push(protocol, chain, CMP)
    deadline = head_time(chain) + 3600
    for n in (1, 2):
        escrow.burnForJob(
            100 * CMP, 0, terms(spec_hash(n), deadline, max_input=10, max_output=10), sender=payer
        )
    a, b = (escrow.jobIdFor(payer, spec_hash(n)) for n in (1, 2))
    with reverts(escrow.JobEscrowUsageAboveCaps, jobId=b, inputTokens=10, outputTokens=11):
        escrow.settle(
            [
                settlement(a, operator, 10, 10, result_hash(1)),
                settlement(b, operator, 10, 11, result_hash(2)),
            ],
            sender=protocol.relayer,
        )
    assert [job_status(protocol, j) for j in (a, b)] == [JOB_OPEN, JOB_OPEN]


def _registered(p: Deployed, account: Any, models: list[int]) -> Any:
    """`account`, funded with the minimum stake and registered serving `models`."""
    p.token.transfer(account, OPERATOR_STAKE, sender=p.users[3])
    p.token.approve(p.registry.address, OPERATOR_STAKE, sender=account)
    p.registry.register(OPERATOR_STAKE, OPERATOR_ENDPOINT, models, sender=account)
    return account


def _settle_to(p: Deployed, chain: Any, operator: Any, n: int = 1) -> tuple[int, Any]:
    """Opens job `n` and returns it with the relayer's settlement of it to `operator`, not yet sent."""
    job_id = open_by_burn(p, chain, p.users[0], n)
    return job_id, settlement(job_id, operator, 10, 10, result_hash(n))


@pytest.mark.parametrize("how", ["jailed", "unbonding", "withdrawn", "never registered", "below min stake"])
def test_relayer_settling_to_an_inactive_operator_reverts(
    protocol: Deployed, chain: Any, gov: Governance, wallet: Any, how: str
) -> None:
    """The relayer key's attack: credit the earnings of an address that is not an active operator."""
    p, escrow = protocol, protocol.escrow
    operator = wallet
    if how != "never registered":
        _registered(p, operator, [MODEL])
    if how == "jailed":
        p.registry.slash(operator, 1, b"\x42" * 32, sender=p.slasher)
    elif how in ("unbonding", "withdrawn"):
        p.registry.requestUnbonding(sender=operator)
    if how == "withdrawn":
        advance(chain, p.registry.unbondingDelay())
        p.registry.withdraw(sender=operator)
    if how == "below min stake":
        gov.execute(p.registry.setMinStake, OPERATOR_STAKE + 1)
    assert not p.registry.isActive(operator)
    push(p, chain, CMP)
    job_id, item = _settle_to(p, chain, operator)

    with reverts(escrow.JobEscrowOperatorNotActive, jobId=job_id, operator=operator):
        escrow.settle([item], sender=p.relayer)
    assert job_status(p, job_id) == JOB_OPEN
    assert escrow.earningsOf(operator) == 0


def test_relayer_settling_to_an_operator_not_serving_the_model_reverts(
    protocol: Deployed, chain: Any, wallet: Any
) -> None:
    p, escrow = protocol, protocol.escrow
    operator = _registered(p, wallet, [2, 300])  # active, but not for the job's model
    assert p.registry.isActive(operator)
    push(p, chain, CMP)
    job_id, item = _settle_to(p, chain, operator)
    with reverts(escrow.JobEscrowOperatorNotServingModel, jobId=job_id, operator=operator, modelId=MODEL):
        escrow.settle([item], sender=p.relayer)
    assert job_status(p, job_id) == JOB_OPEN


def test_an_operator_that_drops_the_model_can_no_longer_be_paid_for_it(
    protocol: Deployed, chain: Any
) -> None:
    p, escrow, operator = protocol, protocol.escrow, protocol.operators[0]
    push(p, chain, CMP)
    job_id, item = _settle_to(p, chain, operator)
    p.registry.update(OPERATOR_ENDPOINT, [2], sender=operator)
    with reverts(escrow.JobEscrowOperatorNotServingModel, jobId=job_id, operator=operator, modelId=MODEL):
        escrow.settle([item], sender=p.relayer)
    p.registry.update(OPERATOR_ENDPOINT, [2, MODEL], sender=operator)
    escrow.settle([item], sender=p.relayer)
    assert job_status(p, job_id) == JOB_SETTLED


def test_an_inactive_operator_in_a_later_run_reverts_the_whole_batch(protocol: Deployed, chain: Any) -> None:
    p, escrow = protocol, protocol.escrow
    (a, b), jailed = p.operators[:2], p.operators[2]
    push(p, chain, CMP)
    jobs = [open_by_burn(p, chain, p.users[0], n) for n in range(1, 6)]
    p.registry.slash(jailed, 1, b"\x42" * 32, sender=p.slasher)
    batch = [
        settlement(jobs[0], a, 1, 1, result_hash(1)),
        settlement(jobs[1], a, 1, 1, result_hash(2)),
        settlement(jobs[2], b, 1, 1, result_hash(3)),
        settlement(jobs[3], jailed, 1, 1, result_hash(4)),
        settlement(jobs[4], jailed, 1, 1, result_hash(5)),
    ]
    with reverts(escrow.JobEscrowOperatorNotActive, jobId=jobs[3], operator=jailed):
        escrow.settle(batch, sender=p.relayer)
    assert [job_status(p, j) for j in jobs] == [JOB_OPEN] * 5
    escrow.settle(batch[:3], sender=p.relayer)
    assert escrow.earningsOf(a) == 2 and escrow.earningsOf(b) == 1


def test_settle_checks_each_models_bitmap_word_within_a_run(
    protocol: Deployed, chain: Any, gov: Governance, wallet: Any
) -> None:
    """Model 300 lies in the registry's second 256-id word: a run of one operator across both words asks the
    registry again, and an operator listing only the first word's model is refused the second's job."""
    p, escrow = protocol, protocol.escrow
    gov.execute(escrow.setModelPrice, 300, "Large", 1_000_000, 2_000_000)
    both = _registered(p, wallet, [MODEL, 300])
    push(p, chain, CMP)
    deadline = head_time(chain) + 3600
    ids = []
    for n, model in ((1, MODEL), (2, 300), (3, MODEL), (4, 300)):
        escrow.burnForJob(100 * CMP, 0, terms(spec_hash(n), deadline, model=model), sender=p.users[0])
        ids.append(escrow.jobIdFor(p.users[0], spec_hash(n)))
    only_first = p.operators[0]
    with reverts(escrow.JobEscrowOperatorNotServingModel, jobId=ids[3], operator=only_first, modelId=300):
        escrow.settle(
            [
                settlement(ids[2], only_first, 1, 1, result_hash(3)),
                settlement(ids[3], only_first, 1, 1, result_hash(4)),
            ],
            sender=p.relayer,
        )
    tx = escrow.settle(
        [settlement(j, both, 1, 1, result_hash(n)) for n, j in enumerate(ids)], sender=p.relayer
    )
    assert [e["operator"] for e in event_args(tx, escrow.JobSettled)] == [both.address] * 4


# ---------------------------------------------------------------- price book


def test_price_book_lists_the_deployed_model_only(protocol: Deployed) -> None:
    assert protocol.escrow.modelPrice(MODEL) == (100_000, 200_000, True)
    assert protocol.escrow.modelPrice(2) == (0, 0, False)


@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "cost"),
    [
        (0, 0, 0),
        (1, 0, 1),  # 0.1 unit, rounded up
        (10, 0, 1),
        (11, 0, 2),
        (0, 5, 1),
        (0, 6, 2),
        (3, 7, 2),  # 0.3 + 1.4 = 1.7
        (1_000_000, 1_000_000, 300_000),  # $0.10 + $0.20 per million
        (2**32 - 1, 2**32 - 1, math.ceil((2**32 - 1) * 300_000 / 10**6)),
    ],
)
def test_cost_of_rounds_up(protocol: Deployed, input_tokens: int, output_tokens: int, cost: int) -> None:
    assert protocol.escrow.costOf(MODEL, input_tokens, output_tokens) == cost


def test_cost_of_an_unknown_model_reverts(protocol: Deployed) -> None:
    escrow = protocol.escrow
    call_reverts(escrow.ModelPriceBookUnknownModel, escrow.costOf, 7, 1, 1, modelId=7)


@pytest.mark.parametrize("setter", ["setModelPrice", "delistModel"])
def test_price_book_change_by_non_governor_reverts(protocol: Deployed, setter: str) -> None:
    escrow, guardian = protocol.escrow, protocol.deployer
    args = (2, "Llama-3.2-1B", 1, 1) if setter == "setModelPrice" else (MODEL,)
    with reverts(
        escrow.AccessControlUnauthorizedAccount, account=guardian, neededRole=escrow.GOVERNOR_ROLE()
    ):
        getattr(escrow, setter)(*args, sender=guardian)
    assert escrow.modelPrice(MODEL) == (100_000, 200_000, True)


def test_set_model_price_through_timelock_lists_a_model(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    escrow, payer = protocol.escrow, protocol.users[0]
    tx = gov.execute(escrow.setModelPrice, 2, "Llama-3.2-1B", 1_000_000, 3_000_000)
    assert event_args(tx, escrow.ModelPriced) == [
        normalised(
            modelId=2, name="Llama-3.2-1B", inputPricePerMillion=1_000_000, outputPricePerMillion=3_000_000
        )
    ]
    assert escrow.modelPrice(2) == (1_000_000, 3_000_000, True)

    push(protocol, chain, CMP)
    escrow.burnForJob(100 * CMP, 0, terms(spec_hash(1), head_time(chain) + 3600, model=2), sender=payer)
    job_id = escrow.jobIdFor(payer, spec_hash(1))
    protocol.registry.update(OPERATOR_ENDPOINT, [MODEL, 2], sender=protocol.operators[0])  # serves it too
    tx = escrow.settle(
        [settlement(job_id, protocol.operators[0], 1000, 100, result_hash(1))], sender=protocol.relayer
    )
    # 1000 * $1 + 100 * $3 per million tokens: 1,300 credit units.
    assert event_args(tx, escrow.JobSettled)[0]["charge"] == 1_300


@pytest.mark.parametrize(("name", "input_price", "output_price"), [("", 1, 1), ("Llama-3.2-1B", 0, 0)])
def test_set_model_price_with_invalid_listing_reverts(
    protocol: Deployed, gov: Governance, name: str, input_price: int, output_price: int
) -> None:
    with reverts(protocol.escrow.ModelPriceBookInvalidListing, modelId=2):
        gov.execute(protocol.escrow.setModelPrice, 2, name, input_price, output_price)
    assert protocol.escrow.modelPrice(2) == (0, 0, False)


def test_delist_an_unknown_model_reverts(protocol: Deployed, gov: Governance) -> None:
    with reverts(protocol.escrow.ModelPriceBookUnknownModel, modelId=2):
        gov.execute(protocol.escrow.delistModel, 2)


def test_delisted_model_cannot_open_jobs_but_open_jobs_still_settle(
    protocol: Deployed, chain: Any, gov: Governance
) -> None:
    escrow, payer, operator = protocol.escrow, protocol.users[0], protocol.operators[0]
    push(protocol, chain, CMP)
    job_id = open_by_burn(protocol, chain, payer, 1, ttl=2 * 3600)

    tx = gov.execute(escrow.delistModel, MODEL)

    assert event_args(tx, escrow.ModelDelisted) == [normalised(modelId=MODEL)]
    assert escrow.modelPrice(MODEL) == (100_000, 200_000, False)
    push(protocol, chain, CMP)
    with reverts(escrow.JobEscrowModelNotListed, modelId=MODEL):
        escrow.burnForJob(100 * CMP, 0, terms(spec_hash(2), head_time(chain) + 3600), sender=payer)
    # The open job settles at the model's last price.
    tx = escrow.settle([settlement(job_id, operator, 1234, 567, result_hash(1))], sender=protocol.relayer)
    assert event_args(tx, escrow.JobSettled)[0]["charge"] == 237
    assert escrow.earningsOf(operator) == 237

"""DESIGN.md section 4, invariant 5: the chain and the pure-Python reference model agree exactly, epoch by
epoch, for the same scenario. Random scenarios (prices that crash and spike, outages, uncertain oracles, tight
mint limits, short capacity, late operators, poor users) run on anvil and on the model; every field of every
epoch's record must be equal. One scenario also runs in-process (py-evm), and a crafted one checks that the
comparison covers halts, outages, reverts and expiries."""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bme.economics.status import Status
from bme.scenario.records import EpochRecord
from bme.scenario.runner import run_scenario
from bme.scenario.spec import Scenario
from tests.scenario.helpers import SCENARIOS_DIR, scenario, small

EXAMPLES = 15 if os.environ.get("CI") else 6


def assert_same(model: list[EpochRecord], chain: list[EpochRecord]) -> None:
    assert len(model) == len(chain)
    for m, c in zip(model, chain, strict=True):
        diff = {f.name: (getattr(m, f.name), getattr(c, f.name)) for f in fields(EpochRecord)}
        diff = {k: v for k, v in diff.items() if v[0] != v[1]}
        assert not diff, f"epoch {m.epoch}: model != chain: {diff}"


def assert_accounts_balance(records: list[EpochRecord]) -> None:
    """Supply moves only by burns and mints, and every CMP and credit is somewhere."""
    for r in records:
        assert r.supply_change == r.reissued + r.new_issuance + r.emission_released - r.burned
        assert r.cmp_supply == r.user_cmp + r.operator_cmp + r.treasury_cmp + r.staked + r.unclaimed_emission
        assert r.outstanding_credits == r.user_credits + r.escrowed_credits + r.operator_earnings
        assert r.escrowed_credits >= 0 and r.user_cmp >= 0
        assert r.jobs_opened + r.jobs_rejected == r.jobs_requested
        assert r.jobs_settled + r.jobs_unserved == r.jobs_opened


@st.composite
def random_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    length = draw(st.sampled_from([65, 120, 900, 86_400]))
    epochs = draw(st.integers(3, 7))
    initial = draw(st.sampled_from([0.05, 1.0, 1.0, 3.0, 40.0]))
    kind = draw(st.sampled_from(["constant", "points", "gbm"]))
    price: dict[str, Any] = {"kind": kind}
    if kind == "points":
        steps = draw(st.lists(st.sampled_from([0.3, 0.85, 1.0, 1.2, 4.0]), min_size=1, max_size=3))
        price["points"] = [{"at": 0, "price": initial}] + [
            {"at": (i + 1) * length, "price": initial * f} for i, f in enumerate(steps)
        ]
    else:
        price["initial"] = initial
        if kind == "gbm":
            price["volatility"] = draw(st.sampled_from([0.5, 5.0, 20.0]))
    price["confidence_bps"] = draw(st.sampled_from([0, 0, 20, 150, 151, 600]))
    price["shocks"] = [
        {"at": draw(st.integers(0, epochs - 1)) * length, "factor": draw(st.sampled_from([0.2, 0.7, 2.5]))}
        for _ in range(draw(st.integers(0, 2)))
    ]
    if draw(st.booleans()):
        start = draw(st.integers(1, epochs - 1))
        price["outages"] = [{"start": start * length, "end": (start + draw(st.integers(1, 2))) * length}]
    amount = draw(st.sampled_from([0.5, 5.0, 40.0]))
    seg_epochs = draw(st.sampled_from([2, 100]))
    decay = draw(st.sampled_from([0, 3_000]))
    segment: dict[str, Any] = {"epochs": seg_epochs, "amount_per_epoch": amount}
    if decay:
        segment |= {"decay_bps": decay, "decay_period": 2}
    warn = draw(st.sampled_from([9_500, 10_000, 12_000]))
    max_job = draw(st.sampled_from([length, 86_400]))
    groups = [
        {
            "name": f"g{i}",
            "users": draw(st.integers(1, 4)),
            "jobs_per_epoch": draw(st.sampled_from([0, 2, 6, 12])),
            "models": draw(st.sampled_from([{1: 1}, {2: 1}, {1: 3, 2: 1}])),
            "input_tokens": draw(st.sampled_from([[10, 100], [20_000, 1_000_000]])),
            "output_tokens": draw(st.sampled_from([[1, 50], [2_000, 100_000]])),
            "cmp_per_user": draw(st.sampled_from([15, 500, 20_000])),
            "topup_credits": draw(st.sampled_from([1, 10, 60])),
        }
        for i in range(draw(st.integers(1, 2)))
    ]
    operators = [
        {
            "name": f"o{i}",
            "count": draw(st.integers(1, 3)),
            "stake": draw(st.sampled_from([100, 250])),
            "capacity": draw(st.sampled_from([0, 2, 10])),
            "models": draw(st.sampled_from([None, [1], [2]])),
            "join_epoch": draw(st.integers(0, 2)),
            "redeem_every": draw(st.integers(1, 3)),
            "redeem_share": draw(st.sampled_from([1.0, 0.5, 0.3333])),
            "claim_every": draw(st.integers(1, 2)),
            "wash": draw(
                st.sampled_from([None, None, {"usd_per_epoch": 0}, {"usd_per_epoch": 45, "cmp": 300}])
            ),
        }
        for i in range(draw(st.integers(1, 2)))
    ]
    for o in operators:
        if o["models"] is None:
            del o["models"]
        if o["wash"] is None:
            del o["wash"]
    return {
        "name": "random",
        "seed": draw(st.integers(0, 2**32)),
        "duration": epochs * length,
        "epoch_length": length,
        "price": price,
        "models": small()["models"],
        "demand": {
            "groups": groups,
            "elasticity": draw(st.sampled_from([0.0, -1.0, 0.5])),
            "growth": [{"at": length, "factor": draw(st.sampled_from([0.5, 1.0, 3.0]))}],
        },
        "operators": operators,
        "protocol": {
            "mint_spread_bps": draw(st.sampled_from([0, 25, 300])),
            "settle_spread_bps": draw(st.sampled_from([0, 50])),
            "cr_warn_bps": warn,
            "cr_halt_bps": warn - draw(st.sampled_from([300, 1_000])),
            "cr_hysteresis_bps": draw(st.sampled_from([0, 100, 500])),
            "confidence_multiplier": draw(st.sampled_from([0, 2, 5])),
            "oracle_max_age": draw(st.sampled_from([1, 30, 2 * length])),
            "oracle_max_step_bps": draw(st.sampled_from([0, 1_000, 5_000])),
            "oracle_step_period": draw(st.sampled_from([0, 1])),
            "mint_window": draw(st.sampled_from(["1h", "1d"])),
            "min_mint_credits": draw(st.sampled_from([0.5, 10, 40])),
            "mint_limit": draw(st.sampled_from([3, 60, 100_000])),
            "seed_tokens": draw(st.sampled_from([0, 0, 50])),
            "max_job_duration": max_job,
            "min_stake": 100,
            "emission": {"hard_cap": amount * 200 + 1, "segments": [segment]},
        },
        "relayer": {
            "settle_batch": draw(st.sampled_from([1, 3, 100])),
            "job_ttl": draw(st.sampled_from([1, min(length - 3, max_job), min(length // 2, max_job)])),
        },
    }


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=random_scenarios())
def test_random_scenarios_agree_on_anvil_and_the_model(raw: dict[str, Any]) -> None:
    s = scenario(raw)
    model = run_scenario(s, "model").records
    chain = run_scenario(s, "anvil").records
    assert_same(model, chain)
    assert_accounts_balance(chain)


def eventful() -> Scenario:
    """Crafted to go through everything: a crash into HaltCR, an outage into HaltOracle, a mint limit that
    refuses releases and redemptions, capacity that leaves jobs to expire, a late operator, users who run
    out."""
    raw = small(duration="16m")
    raw["price"] = {
        "kind": "points",
        "points": [{"at": 0, "price": 1.0}, {"at": "4m", "price": 1.0}, {"at": "6m", "price": 0.01}],
        "outages": [{"start": "12m", "end": "14m"}],
    }
    raw["demand"]["groups"].append(
        {
            "name": "poor",
            "users": 2,
            "jobs_per_epoch": 4,
            "models": {2: 1},
            "input_tokens": [200_000, 1_000_000],
            "output_tokens": [20_000, 100_000],
            "cmp_per_user": 15,
            "topup_credits": 12,
        }
    )
    raw["operators"] = [
        {"name": "pool", "count": 1, "stake": 1000, "capacity": 4, "redeem_every": 1, "claim_every": 1},
        {"name": "late", "count": 1, "stake": 1000, "capacity": 4, "join_epoch": 3, "claim_every": 2},
    ]
    raw["protocol"]["mint_limit"] = 300
    raw["protocol"]["mint_window"] = "5m"
    return scenario(raw)


def test_an_eventful_scenario_agrees_and_covers_halts_outages_reverts_and_expiries() -> None:
    s = eventful()
    model = run_scenario(s, "model").records
    chain = run_scenario(s, "anvil").records
    assert_same(model, chain)
    assert_accounts_balance(chain)
    statuses = {r.status for r in chain}
    assert {Status.HEALTHY, Status.HALT_CR, Status.HALT_ORACLE} <= statuses
    assert sum(r.failed_transactions for r in chain) > 0
    assert sum(r.jobs_expired for r in chain) > 0
    assert sum(r.jobs_rejected for r in chain) > 0
    assert sum(r.new_issuance for r in chain) > 0
    assert sum(r.emission_released for r in chain) > 0 and sum(r.rewards_claimed for r in chain) > 0


def test_the_in_process_chain_agrees_with_the_model() -> None:
    s = eventful()
    model = run_scenario(s, "model", epochs=5).records
    chain = run_scenario(s, "inprocess", epochs=5).records
    assert_same(model, chain)


def test_the_baseline_agrees_on_anvil_for_its_first_weeks() -> None:
    from bme.scenario.loading import load_scenario

    s = load_scenario(SCENARIOS_DIR / "baseline.yaml")
    assert_same(run_scenario(s, "model", epochs=30).records, run_scenario(s, "anvil", epochs=30).records)

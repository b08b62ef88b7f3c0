"""Price paths and demand: shaped as the file says, and the same for the same seed, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from bme.scenario.demand import Demand
from bme.scenario.prices import price_path
from tests.scenario.helpers import scenario, small

pytestmark = pytest.mark.pure

WAD = 10**18


def rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def test_points_shocks_outages_and_confidence() -> None:
    s = scenario(
        small(
            price={
                "kind": "points",
                "points": [{"at": 0, "price": 1.0}, {"at": "4m", "price": 3.0}],
                "shocks": [{"at": "6m", "factor": 0.5}],
                "outages": [{"start": "2m", "end": "3m"}],
                "confidence_bps": 100,
            }
        )
    )
    path = price_path(s, rng(0))
    assert [p / WAD for p in path.market] == [1.0, 2.0, 3.0, 1.5, 1.5]
    assert path.pushed == (True, False, True, True, True)
    assert path.confidence == tuple(p // 100 for p in path.market)


def test_gbm_is_reproducible_and_depends_on_the_seed() -> None:
    raw = small(price={"kind": "gbm", "initial": 2.0, "drift": 0.1, "volatility": 3.0}, duration="2h")
    s = scenario(raw)
    a, b = price_path(s, rng(1)), price_path(s, rng(1))
    assert a == b
    assert a.market[0] == 2 * WAD and len(set(a.market)) > 50
    assert price_path(s, rng(2)).market != a.market


def test_constant_price_with_a_shock() -> None:
    s = scenario(small(price={"kind": "constant", "initial": 1.25, "shocks": [{"at": "4m", "factor": 2}]}))
    assert [p / WAD for p in price_path(s, rng(0)).market] == [1.25, 1.25, 2.5, 2.5, 2.5]


def test_demand_draws_follow_the_groups_and_the_growth() -> None:
    raw = small(duration="2h")
    raw["demand"]["growth"] = [{"at": "1h", "factor": 3}]
    raw["demand"]["groups"][0]["jobs_per_epoch"] = 20
    s = scenario(raw)
    path = price_path(s, rng(0))
    a, b = Demand(s, path, rng(5)), Demand(s, path, rng(5))
    first = [a.requests(k) for k in range(s.epochs)]
    assert first == [b.requests(k) for k in range(s.epochs)]
    jobs = [j for epoch in first for j in epoch]
    assert all(0 <= j.user < 4 and j.model_id in (1, 2) for j in jobs)
    assert all(20_000 <= j.input_tokens <= 120_000 and 2_000 <= j.output_tokens <= 8_000 for j in jobs)
    assert all(j.max_output_tokens == 8_000 for j in jobs)
    early, late = sum(len(e) for e in first[:30]), sum(len(e) for e in first[30:])
    assert 2 * early < late  # three times the rate after an hour


def test_elasticity_scales_demand_with_the_price() -> None:
    raw = small(price={"kind": "points", "points": [{"at": 0, "price": 1.0}, {"at": "4m", "price": 4.0}]})
    raw["demand"]["elasticity"] = -0.5
    s = scenario(raw)
    d = Demand(s, price_path(s, rng(0)), rng(0))
    assert [round(d.multiplier(k), 6) for k in range(5)] == [1.0, round(2.5**-0.5, 6), 0.5, 0.5, 0.5]

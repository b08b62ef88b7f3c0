"""Finding 4: emissions farmed by paying yourself. A wash trader (an operator that burns CMP for jobs it pays
for and answers itself, redeems its earnings and claims its rewards) runs beside an idle staker with the same
stake, the control. Since emission follows stake, not paid work, the wash trader's rewards equal the idle
staker's, so washing returns the round trip's spreads and nothing more: with the defaults it does not pay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bme.scenario.loading import load_scenario
from bme.scenario.outputs import write_run
from bme.scenario.records import records_table, wash_summary
from bme.scenario.report import build_report
from bme.scenario.runner import run_scenario
from tests.scenario.helpers import SCENARIOS_DIR, scenario, small, write
from tests.scenario.test_chain_matches_model import assert_accounts_balance, assert_same


def washing(usd: float = 50) -> dict[str, Any]:
    """The small scenario with a wash trader and an idle staker beside the pool."""
    raw = small(duration="16m")
    raw["operators"] += [
        {
            "name": "washer",
            "count": 1,
            "stake": 1000,
            "capacity": 0,
            "redeem_every": 1,
            "wash": {"usd_per_epoch": usd, "cmp": max(1000, 3 * usd)},
        },
        {"name": "idle", "count": 1, "stake": 1000, "capacity": 0, "wash": {"usd_per_epoch": 0}},
    ]
    raw["protocol"]["mint_limit"] = max(1000, 10 * usd)  # room to redeem every day's wash
    return raw


def test_the_shipped_wash_trader_does_not_pay() -> None:
    s = load_scenario(SCENARIOS_DIR / "wash_trader.yaml")
    table = records_table(run_scenario(s, "model").records)
    figures = wash_summary(table, washers=1, idlers=1)

    assert (table["wash_burned"] > 0).all()  # it washed $310 every day of the year
    assert figures["wash_burned_usd_per_epoch"] > 300
    # Its rewards are the idle staker's to the unit: paid volume earns no emission.
    assert table["wash_rewards"].sum() == table["idle_rewards"].sum() > 0
    # Washing returns less than staking and doing nothing: the mint and redemption spreads are lost.
    assert figures["wash_excess_usd_per_epoch"] <= 0
    assert figures["wash_return_usd_per_epoch"] < figures["idle_return_usd_per_epoch"]


@pytest.mark.parametrize("usd", [10, 1_000, 50_000])
def test_no_wash_volume_pays_on_the_model(usd: int) -> None:
    table = records_table(run_scenario(scenario(washing(usd)), "model").records)
    figures = wash_summary(table, washers=1, idlers=1)
    assert (table["wash_burned"] > 0).all()
    # It gets its volume back, less the spreads (the last epoch's still as earnings).
    back = table["wash_redeemed"].sum() + table["wash_earnings"].iloc[-1]
    assert 0.99 * table["wash_burned"].sum() < back < table["wash_burned"].sum()
    assert table["wash_rewards"].sum() == table["idle_rewards"].sum() > 0
    assert figures["wash_excess_usd_per_epoch"] < 0


def test_the_wash_trader_agrees_on_anvil_and_the_model_and_does_not_pay() -> None:
    s = scenario(washing())
    model = run_scenario(s, "model").records
    chain = run_scenario(s, "anvil").records
    assert_same(model, chain)
    assert_accounts_balance(chain)
    table = records_table(chain)
    assert table["wash_burned"].sum() > 0 and table["wash_redeemed"].sum() > 0
    assert table["wash_rewards"].sum() == table["idle_rewards"].sum() > 0
    assert wash_summary(table, washers=1, idlers=1)["wash_excess_usd_per_epoch"] < 0


def test_run_json_and_the_report_carry_the_wash_figures(tmp_path: Path) -> None:
    raw = washing()
    text = write(tmp_path, raw).read_text()
    write_run(tmp_path / "run", run_scenario(scenario(raw), "model"), text)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(run["wash"]) >= {
        "wash_return_usd_per_epoch",
        "idle_return_usd_per_epoch",
        "wash_excess_usd_per_epoch",
        "wash_burned_usd_per_epoch",
    }
    assert run["wash"]["wash_excess_usd_per_epoch"] < 0
    html = build_report(tmp_path / "run").read_text()
    assert "wash_excess_usd_per_epoch" in html


def test_a_wash_below_the_minimum_mint_is_refused() -> None:
    raw = washing(usd=1)
    with pytest.raises(Exception, match="below min_mint_credits"):
        scenario(raw)

"""Scenario files: the shipped library validates, and every kind of mistake is one clear error naming its
place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bme.errors import ConfigError
from bme.scenario.loading import load_scenario, parse_raw
from bme.scenario.overrides import split_values, with_override
from bme.scenario.prices import price_path
from bme.scenario.units import parse_duration
from tests.scenario.helpers import SCENARIOS_DIR, scenario, small, write

pytestmark = pytest.mark.pure

SHIPPED = sorted(SCENARIOS_DIR.glob("*.yaml"))


def error(raw: dict[str, Any], base: Path = SCENARIOS_DIR) -> str:
    with pytest.raises(ConfigError) as exc:
        scenario(raw, base)
    return str(exc.value)


def test_the_library_has_the_six_scenarios_and_each_validates() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "baseline",
        "demand_boom",
        "price_crash",
        "price_pump",
        "oracle_outage",
        "emission_decay",
    } <= names
    for path in SHIPPED:
        s = load_scenario(path)
        assert s.description, f"{path.name} must say what it shows"
        assert s.epochs >= 1
    assert (SCENARIOS_DIR / "README.md").exists()


def test_the_baseline_is_a_year_of_daily_epochs_with_ten_thousand_jobs() -> None:
    s = load_scenario(SCENARIOS_DIR / "baseline.yaml")
    assert (s.epochs, s.epoch_length) == (365, 86_400)
    assert sum(g.jobs_per_epoch for g in s.demand.groups) * s.epochs >= 10_000


def test_an_unknown_key_is_named_with_a_suggestion() -> None:
    raw = small()
    raw["demand"]["groups"][0]["jobs_per_epok"] = raw["demand"]["groups"][0].pop("jobs_per_epoch")
    message = error(raw)
    assert "demand.groups.0.jobs_per_epok: unknown key (did you mean 'jobs_per_epoch'?)" in message
    assert "demand.groups.0.jobs_per_epoch: missing" in message


def test_an_unknown_key_in_a_price_kind_lists_what_is_allowed() -> None:
    message = error(small(price={"kind": "gbm", "initial": 1.0, "volatilty": 0.5}))
    assert "price.gbm.volatilty: unknown key (did you mean 'volatility'?)" in message


def test_wrong_types_are_named_with_what_was_given() -> None:
    raw = small()
    raw["demand"]["groups"][0]["users"] = "ten"
    assert "demand.groups.0.users: Input should be a valid integer" in error(raw)
    raw = small()
    raw["operators"][0]["count"] = 2.5
    assert "operators.0.count: Input should be a valid integer (got float 2.5)" in error(raw)
    cheap = error(small(price={"kind": "constant", "initial": "cheap"}))
    assert "price.constant.initial: expected a number, got str 'cheap'" in cheap


def test_a_missing_kind_or_an_unknown_kind_is_explained() -> None:
    assert "price: missing key 'kind'" in error(small(price={"initial": 1.0}))
    assert "'brownian' found using 'kind' does not match any of the expected tags" in error(
        small(price={"kind": "brownian", "initial": 1.0})
    )


def test_a_price_path_that_goes_negative_is_refused() -> None:
    message = error(
        small(price={"kind": "points", "points": [{"at": 0, "price": 1}, {"at": "4m", "price": -0.5}]})
    )
    assert "goes to -0.5" in message
    assert "price" in error(small(price={"kind": "constant", "initial": -1}))
    assert "must increase" in error(
        small(price={"kind": "points", "points": [{"at": 0, "price": 1}, {"at": 0, "price": 2}]})
    )


def test_a_price_path_that_reaches_zero_is_refused_when_generated() -> None:
    s = scenario(small(price={"kind": "constant", "initial": 1e-15}))
    with pytest.raises(ConfigError, match=r"reaches \$0"):
        price_path(s, np.random.Generator(np.random.PCG64(0)))


def test_csv_series_are_checked(tmp_path: Path) -> None:
    csv_price = {"kind": "csv", "file": "p.csv", "time_column": "time", "price_column": "close"}
    (tmp_path / "p.csv").write_text("time,price\n0,1.0\n600,1.0\n")
    assert "p.csv has no column 'close' (its columns: time, price)" in error(small(price=csv_price), tmp_path)
    (tmp_path / "p.csv").write_text("time,close\n0,1.0\n300,-2\n600,1\n")
    assert "line 3: the price -2.0 is not positive" in error(small(price=csv_price), tmp_path)
    (tmp_path / "p.csv").write_text("time,close\n0,1.0\n0,1.1\n")
    assert "line 3: times must increase" in error(small(price=csv_price), tmp_path)
    (tmp_path / "p.csv").write_text("time,close\n0,1.0\n60,1.1\n")
    assert "covers 60 s" in error(small(price=csv_price), tmp_path)
    assert "cannot read the price file" in error(small(price=dict(csv_price, file="missing.csv")), tmp_path)
    (tmp_path / "p.csv").write_text(
        "time,close\n2025-01-01T00:00:00Z,1.0\n2025-01-01T00:05:00Z,2.0\n2025-01-01T00:08:00Z,2.0\n"
    )
    s = scenario(small(price=csv_price), tmp_path)
    path = price_path(s, np.random.Generator(np.random.PCG64(0)))
    assert [p / 10**18 for p in path.market] == [1.0, 1.0, 1.0, 2.0, 2.0]  # epochs at 0, 2, 4, 6, 8 min


def test_duplicate_keys_and_bad_yaml_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2: the key 'name' appears twice"):
        parse_raw("name: a\nname: b\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_raw("name: [a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_raw("- a\n- b\n")
    with pytest.raises(ConfigError, match="cannot read the scenario file"):
        load_scenario(tmp_path / "absent.yaml")


def test_net_emissions_are_refused_because_the_contracts_lack_them() -> None:
    raw = small()
    raw["protocol"]["net_emissions"] = {"enabled": True}
    assert "net emissions are not implemented by the contracts" in error(raw)
    raw["protocol"]["net_emissions"] = {"enabled": False, "smoothing_epochs": 10}
    scenario(raw)


def test_parameters_the_contracts_refuse_are_refused() -> None:
    raw = small()
    raw["protocol"]["cr_halt_bps"] = 9_600
    assert "cr_halt_bps must be below cr_warn_bps" in error(raw)
    raw = small()
    raw["protocol"]["emission"] = {"hard_cap": 10, "segments": [{"epochs": 100, "amount_per_epoch": 5}]}
    assert "above the hard cap" in error(raw)
    raw["protocol"]["emission"] = {
        "segments": [{"epochs": 0, "amount_per_epoch": 5}, {"epochs": 5, "amount_per_epoch": 1}]
    }
    assert "segment 0 is malformed" in error(raw)
    raw = small()
    raw["protocol"]["mint_spread_bps"] = 10_001
    assert "protocol.mint_spread_bps" in error(raw)
    raw = small()
    raw["operators"][0]["stake"] = 10
    assert "below min_stake" in error(raw)


def test_timing_mistakes_are_refused() -> None:
    assert "whole number of epochs" in error(small(duration="5m"))
    assert "epoch_length must be 65 s to 93,600 s" in error(small(epoch_length=60, duration=600))
    assert "relayer.job_ttl" in error(small(relayer={"job_ttl": "2m"}))
    raw = small()
    raw["protocol"]["min_job_duration"] = "2m"  # above the relayer's job_ttl of 1m: jobs could not open
    assert "relayer.job_ttl must be min_job_duration (120 s)" in error(raw)
    raw["protocol"]["min_job_duration"] = raw["protocol"].get("max_job_duration", "1d")
    assert "min_job_duration must be at least 1 s and below max_job_duration" in error(raw)
    raw = small()
    raw["price"]["shocks"] = [{"at": "1h", "factor": 0.5}]
    assert "price.shocks.0.at (3600 s) is not before the scenario's end" in error(raw)
    raw = small()
    raw["price"]["outages"] = [{"start": "4m", "end": "2m"}]
    assert "must end after it starts" in error(raw)
    assert "unknown" not in error(small(duration="ten days"))
    assert "expected a duration" in error(small(duration="ten days"))


def test_models_must_be_listed_and_tokens_in_range() -> None:
    raw = small()
    raw["demand"]["groups"][0]["models"] = {7: 1}
    assert "uses models [7] not listed" in error(raw)
    raw = small()
    raw["demand"]["groups"][0]["output_tokens"] = [10, 5]
    assert "max (5) is below min (10)" in error(raw)
    raw = small()
    raw["demand"]["groups"][0]["input_tokens"] = [1, 2**32]
    assert "must fit 32 bits" in error(raw)


def test_durations() -> None:
    assert [parse_duration(v) for v in (90, "90s", "30m", "6h", "1d", "2w", "1y", "1.5h")] == [
        90,
        90,
        1_800,
        21_600,
        86_400,
        1_209_600,
        31_536_000,
        5_400,
    ]
    for bad in ("1.5s", "-1d", "d", True, -5, 1.5):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_overrides_for_sweeps() -> None:
    raw = small()
    out = with_override(raw, "protocol.mint_spread_bps", 50)
    assert out["protocol"]["mint_spread_bps"] == 50 and "mint_spread_bps" not in raw["protocol"]
    out = with_override(raw, "demand.groups.0.users", 9)
    assert out["demand"]["groups"][0]["users"] == 9
    out = with_override(raw, "relayer.settle_batch", 7)
    assert scenario(out).relayer.settle_batch == 7
    with pytest.raises(ConfigError, match="not an item of a list of 1"):
        with_override(raw, "demand.groups.3.users", 1)
    with pytest.raises(ConfigError, match="is a value, not a section"):
        with_override(raw, "seed.x", 1)
    assert "protocl: unknown key (did you mean 'protocol'?)" in error(with_override(raw, "protocl.x", 1))
    assert split_values("1, 2,[3, 4],{a: 1, b: 2}") == ["1", "2", "[3, 4]", "{a: 1, b: 2}"]


def test_scenario_files_load_from_disk_relative_to_their_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.csv").write_text("timestamp,price\n0,1\n3600,2\n")
    path = write(tmp_path, small(price={"kind": "csv", "file": "data/p.csv"}))
    assert load_scenario(path).price.kind == "csv"

"""Run outputs: the same scenario and seed give the same tables, byte for byte, on the model and on the chain;
reports are built from a run's directory alone; the benchmark's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bme.scenario.bench import measure
from bme.scenario.outputs import write_run
from bme.scenario.report import build_report
from bme.scenario.runner import run_scenario
from bme.scenario.sweep import grid, parse_sets, run_sweep
from tests.scenario.helpers import scenario, small, write

DETERMINISTIC = ("epochs.csv", "epochs.parquet", "scenario.yaml")


def test_same_file_and_seed_same_bytes_on_the_model_and_on_anvil(tmp_path: Path) -> None:
    raw = small()
    text = write(tmp_path, raw).read_text()
    s = scenario(raw)
    for name, engine in (("a", "model"), ("b", "model"), ("c", "anvil")):
        write_run(tmp_path / name, run_scenario(s, engine), text)  # type: ignore[arg-type]
    for f in DETERMINISTIC:
        assert (
            (tmp_path / "a" / f).read_bytes()
            == (tmp_path / "b" / f).read_bytes()
            == (tmp_path / "c" / f).read_bytes()
        )
    assert (tmp_path / "a" / "run.json").read_bytes() == (tmp_path / "b" / "run.json").read_bytes()
    run = json.loads((tmp_path / "c" / "run.json").read_text())
    assert (
        run["engine"] == "anvil"
        and "anvil" in run["versions"]
        and len(run["versions"]["contracts_sha256"]) == 64
    )
    timing = json.loads((tmp_path / "c" / "timing.json").read_text())
    assert timing["transactions"] > 0 and timing["gas_used"] > 0
    other = scenario(small(seed=4))
    write_run(tmp_path / "d", run_scenario(other), text)
    assert (tmp_path / "d" / "epochs.csv").read_bytes() != (tmp_path / "a" / "epochs.csv").read_bytes()


@pytest.mark.pure
def test_the_table_is_tidy_and_consistent(tmp_path: Path) -> None:
    s = scenario(small())
    table = write_run(tmp_path, run_scenario(s), "")
    assert list(table["epoch"]) == list(range(s.epochs))
    parquet = pd.read_parquet(tmp_path / "epochs.parquet")
    csv = pd.read_csv(tmp_path / "epochs.csv")
    assert list(parquet.columns) == list(csv.columns) == list(table.columns)
    assert (table["minted"] + table["net_burn"] - table["burned"]).abs().max() < 1e-9
    assert set(table["status"]) <= {"Healthy", "Warning", "HaltCR", "HaltOracle"}
    assert (table["cmp_supply"].diff().dropna() - table["supply_change"][1:]).abs().max() < 1e-6


def test_a_run_report_is_rebuilt_from_its_directory(tmp_path: Path) -> None:
    s = scenario(small())
    write_run(tmp_path, run_scenario(s), "name: small\nprotocol: {cr_warn_bps: 9000, cr_halt_bps: 8000}\n")
    report = build_report(tmp_path)
    page = report.read_text()
    for png in ("supply", "price", "collateral", "burn_mint", "rewards", "jobs"):
        assert (tmp_path / "plots" / f"{png}.png").stat().st_size > 1_000
        assert f"plots/{png}.png" in page
    assert "Headline figures" in page and "contracts_sha256" in page and "warn" in page


def test_a_sweep_runs_every_combination_in_parallel_and_compares_them(tmp_path: Path) -> None:
    raw = small()
    points = grid(raw, tmp_path, parse_sets(["protocol.mint_spread_bps=25,300", "seed=1,2"]))
    assert [p.overrides for p in points] == [
        {"protocol.mint_spread_bps": 25, "seed": 1},
        {"protocol.mint_spread_bps": 25, "seed": 2},
        {"protocol.mint_spread_bps": 300, "seed": 1},
        {"protocol.mint_spread_bps": 300, "seed": 2},
    ]
    done: list[str] = []
    report = run_sweep(
        points,
        "model",
        tmp_path / "out",
        scenario_name="small",
        parameters=["protocol.mint_spread_bps", "seed"],
        workers=2,
        on_done=lambda p, _: done.append(p.name),
    )
    assert sorted(done) == [p.name for p in points]
    summary = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert len(summary) == 4 and {"protocol.mint_spread_bps", "seed", "net_burn_cmp"} <= set(summary.columns)
    for p in points:
        assert (tmp_path / "out" / "runs" / p.name / "epochs.parquet").exists()
    page = report.read_text()
    assert "sweep_supply.png" in page and "sweep_collateral.png" in page
    # Each run equals the same scenario run on its own.
    single = write_run(tmp_path / "single", run_scenario(points[3].scenario), points[3].text)
    pd.testing.assert_frame_equal(
        single, pd.read_parquet(tmp_path / "out" / "runs" / points[3].name / "epochs.parquet")
    )
    assert build_report(tmp_path / "out") == report


def test_the_benchmark_reports_rates_and_agreement(tmp_path: Path) -> None:
    path = write(tmp_path, small())
    figures = measure(path, inprocess_epochs=2, model_repeats=1)
    assert figures["chain_matches_model"] is True
    for engine in ("anvil", "inprocess"):
        assert figures[engine]["epochs_per_second"] > 0 and figures[engine]["transactions_per_second"] > 0
    assert figures["inprocess"]["epochs"] == 2
    assert figures["model"]["scenario_epochs_per_second"] > figures["anvil"]["epochs_per_second"]
    assert figures["targets"]["year_on_anvil"]["applies"] is False  # two-minute epochs: not the year target
    assert figures["model_speedup_vs_anvil"] > 1

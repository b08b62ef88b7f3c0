"""`bme bench scenario`: how fast scenarios replay, on anvil, in-process and on the reference model.

The baseline scenario (a year of daily epochs, about 11,000 jobs) runs in full on anvil and on the model, and
for its first epochs in-process (py-evm is about fifteen times slower than anvil); the anvil run's records are
checked against the model's. Targets: the year on anvil in at most 60 s, all included (anvil's start, the
deployment); the model at least 1,000 times faster than the chain, reported against anvil's epochs and,
per epoch, against the in-process chain's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bme.chain.artifacts import project_root
from bme.scenario.loading import load_scenario
from bme.scenario.runner import Engine, RunResult, run_scenario
from bme.scenario.spec import Scenario

YEAR_TARGET_SECONDS = 60.0
YEAR_TARGET_JOBS = 10_000
MODEL_SPEEDUP_TARGET = 1_000.0


def default_scenario() -> Path:
    return project_root() / "scenarios" / "baseline.yaml"


def _figures(r: RunResult, wall: float) -> dict[str, Any]:
    epochs = len(r.records)
    return {
        "epochs": epochs,
        "jobs": r.jobs,
        "transactions": r.transactions,
        "setup_seconds": round(r.setup_seconds, 3),
        "epoch_seconds": round(r.seconds, 4),
        "total_seconds": round(wall, 3),
        "epochs_per_second": round(epochs / r.seconds, 2),
        "transactions_per_second": round(r.transactions / r.seconds, 1),
    }


def _timed(s: Scenario, engine: Engine, epochs: int | None = None) -> tuple[RunResult, float]:
    started = time.perf_counter()
    result = run_scenario(s, engine, epochs=epochs)
    return result, time.perf_counter() - started


def measure(
    path: Path | None = None,
    inprocess_epochs: int = 20,
    model_repeats: int = 3,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The benchmark's figures, as one JSON-ready dictionary."""
    s = load_scenario(path or default_scenario())
    step("reference model")
    model_runs = [_timed(s, "model") for _ in range(max(model_repeats, 1))]
    model, model_wall = min(model_runs, key=lambda rw: rw[0].seconds)
    step("anvil")
    anvil, anvil_wall = _timed(s, "anvil")
    step(f"in-process, first {inprocess_epochs} epochs")
    inproc, inproc_wall = _timed(s, "inprocess", epochs=inprocess_epochs)
    model_fig = _figures(model, model_wall)
    model_fig.pop("transactions_per_second")
    model_fig["scenario_epochs_per_second"] = model_fig.pop("epochs_per_second")
    speedup = anvil.seconds / model.seconds
    # Per epoch: the in-process run covers the first epochs only (later ones, with more state, cost more).
    speedup_inproc = (inproc.seconds / len(inproc.records)) / (model.seconds / len(model.records))
    daily = s.epoch_length == 86_400
    year = daily and len(anvil.records) >= 365 and anvil.jobs >= YEAR_TARGET_JOBS
    return {
        "scenario": s.name,
        "anvil": _figures(anvil, anvil_wall),
        "inprocess": _figures(inproc, inproc_wall),
        "model": model_fig,
        "chain_matches_model": anvil.records == model.records,
        "model_speedup_vs_anvil": round(speedup, 1),
        "model_speedup_vs_inprocess_per_epoch": round(speedup_inproc, 1),
        "targets": {
            "year_on_anvil": {
                "applies": year,
                "max_seconds": YEAR_TARGET_SECONDS,
                "seconds": round(anvil_wall, 3),
                "met": year and anvil_wall <= YEAR_TARGET_SECONDS,
            },
            "model_speedup": {
                "min": MODEL_SPEEDUP_TARGET,
                "vs_anvil": round(speedup, 1),
                "met_vs_anvil": speedup >= MODEL_SPEEDUP_TARGET,
                "vs_inprocess_per_epoch": round(speedup_inproc, 1),
                "met_vs_inprocess": speedup_inproc >= MODEL_SPEEDUP_TARGET,
            },
        },
    }

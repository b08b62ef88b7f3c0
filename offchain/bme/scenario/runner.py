"""One replay of a scenario: on the reference model, or on the contracts on a fresh anvil or in-process
chain."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bme.economics.jobs import job_id_for
from bme.errors import ConfigError
from bme.scenario.accounts import scenario_accounts
from bme.scenario.backend import Backend, ProtocolConfig
from bme.scenario.demand import Demand
from bme.scenario.driver import Driver
from bme.scenario.prices import price_path
from bme.scenario.records import EpochRecord
from bme.scenario.spec import Scenario

Engine = Literal["model", "anvil", "inprocess"]
ENGINES: tuple[Engine, ...] = ("model", "anvil", "inprocess")


@dataclass
class RunResult:
    """A replay's records and what it cost: seconds for setup (deployment) and for the epochs,
    transactions."""

    scenario: Scenario
    engine: Engine
    records: list[EpochRecord]
    setup_seconds: float
    seconds: float
    transactions: int
    gas_used: int

    @property
    def jobs(self) -> int:
        return sum(r.jobs_requested for r in self.records)


def random_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The seed's two independent streams: the price path's, then the demand's (changing one section of a
    scenario leaves the other's draws unchanged)."""
    price_seed, demand_seed = np.random.SeedSequence(seed).spawn(2)
    return np.random.Generator(np.random.PCG64(price_seed)), np.random.Generator(np.random.PCG64(demand_seed))


def open_backend(s: Scenario, engine: Engine) -> Backend:
    """A fresh world for `s`: the reference model, or the contracts deployed on a new devnet."""
    accounts = scenario_accounts(sum(g.users for g in s.demand.groups), sum(o.count for o in s.operators))
    config = ProtocolConfig.of(s)
    if engine == "model":
        from bme.scenario.model_backend import ModelBackend

        return ModelBackend(config, accounts)
    if engine in ("anvil", "inprocess"):
        from bme.scenario.chain_backend import ChainBackend

        return ChainBackend(config, accounts, engine)
    raise ConfigError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")


def run_scenario(
    s: Scenario,
    engine: Engine = "model",
    on_epoch: Callable[[int, EpochRecord], None] | None = None,
    epochs: int | None = None,
) -> RunResult:
    """Replays `s` (or its first `epochs` epochs) on `engine`; the seed fixes the price path and the demand,
    whatever the engine."""
    job_id_for.cache_clear()  # a run pays for its own job ids: no help from an earlier run's
    price_rng, demand_rng = random_streams(s.seed)
    path = price_path(s, price_rng)
    demand = Demand(s, path, demand_rng)
    started = time.perf_counter()
    with open_backend(s, engine) as backend:
        accounts = scenario_accounts(sum(g.users for g in s.demand.groups), sum(o.count for o in s.operators))
        driver = Driver(s, backend, accounts, path, demand)
        ready = time.perf_counter()
        records = driver.run(on_epoch, epochs)
        done = time.perf_counter()
        return RunResult(
            s, engine, records, ready - started, done - ready, backend.transactions, backend.gas_used
        )

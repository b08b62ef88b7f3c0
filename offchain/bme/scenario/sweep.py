"""Parameter sweeps: every combination of the values given for each parameter, run in parallel on the local
cores (one process per core) or on a Ray cluster, on the reference model by default or on the chain.

A parameter is a dotted path into the scenario file (`protocol.mint_spread_bps`, `demand.groups.0.users`,
`price.volatility`); each combination is the file with those keys replaced, validated like the file itself.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import re
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bme.errors import ConfigError
from bme.scenario.loading import validate
from bme.scenario.overrides import parse_value, split_values, with_override
from bme.scenario.records import EpochRecord, record_dicts, records_from_dicts
from bme.scenario.runner import Engine, RunResult, run_scenario
from bme.scenario.spec import Scenario


@dataclass(frozen=True)
class SweepPoint:
    """One combination: its name (its directory), the overridden keys, the scenario text and scenario."""

    name: str
    overrides: dict[str, Any]
    text: str
    scenario: Scenario


def parse_sets(items: Sequence[str]) -> list[tuple[str, list[Any]]]:
    """`--set path=v1,v2` options as (path, values)."""
    out: list[tuple[str, list[Any]]] = []
    for item in items:
        path, sep, values = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ConfigError(f"--set {item!r}: expected PARAMETER=VALUE1,VALUE2,...")
        parsed = [parse_value(v) for v in split_values(values)]
        if not parsed:
            raise ConfigError(f"--set {item!r}: no values")
        out.append((path, parsed))
    return out


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", str(value)).strip("_")[:40] or "x"


def grid(
    raw: dict[str, Any], base_dir: Path, sets: list[tuple[str, list[Any]]], where: str = "scenario"
) -> list[SweepPoint]:
    """Every combination of `sets` applied to `raw`, each validated (a mistake names its combination)."""
    paths = [p for p, _ in sets]
    points = []
    for index, combo in enumerate(itertools.product(*(values for _, values in sets))):
        data = dict(raw)
        data.pop("sweep", None)
        for path, value in zip(paths, combo, strict=True):
            data = with_override(data, path, value)
        overrides = dict(zip(paths, combo, strict=True))
        label = ",".join(f"{p.rsplit('.', 1)[-1]}={_slug(v)}" for p, v in overrides.items())
        name = f"{index:03d}-{label}" if label else f"{index:03d}"
        text = yaml.safe_dump(data, sort_keys=False)
        scenario = validate(data, base_dir, f"{where} with {label or 'no changes'}")
        points.append(SweepPoint(name, overrides, text, scenario))
    return points


def sets_from_scenario(raw: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """The file's own `sweep:` section as (path, values)."""
    section = raw.get("sweep") or {}
    if not isinstance(section, dict):
        raise ConfigError("sweep: expected a mapping of parameter paths to lists of values")
    out = []
    for path, values in section.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{path}: expected a non-empty list of values")
        out.append((str(path), values))
    return out


# ---------------------------------------------------------------------------------------------- execution


def run_point(scenario: Scenario, engine: Engine) -> tuple[list[dict[str, Any]], float, float, int, int]:
    """One run in a worker: its records as dictionaries and its cost (picklable, for processes and Ray)."""
    r = run_scenario(scenario, engine)
    return record_dicts(r.records), r.setup_seconds, r.seconds, r.transactions, r.gas_used


def _result(
    point: SweepPoint, engine: Engine, out: tuple[list[dict[str, Any]], float, float, int, int]
) -> RunResult:
    rows, setup, seconds, txs, gas = out
    records: list[EpochRecord] = records_from_dicts(rows)
    return RunResult(point.scenario, engine, records, setup, seconds, txs, gas)


def run_local(
    points: list[SweepPoint],
    engine: Engine,
    workers: int,
    on_done: Callable[[SweepPoint, RunResult], None],
) -> None:
    """Runs `points` on `workers` local processes (in this process when 1), calling `on_done` as each ends."""
    if workers <= 1 or len(points) == 1:
        for p in points:
            on_done(p, _result(p, engine, run_point(p.scenario, engine)))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future[Any], SweepPoint] = {
            pool.submit(run_point, p.scenario, engine): p for p in points
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                on_done(futures[f], _result(futures[f], engine, f.result()))


def run_ray(
    points: list[SweepPoint],
    engine: Engine,
    address: str,
    on_done: Callable[[SweepPoint, RunResult], None],
) -> None:
    """Runs `points` as Ray tasks on the cluster at `address` (its workers need this package installed)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: install the extra, pip install 'bme[ray]'") from None
    _check_reachable(address)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a warning about GPUs
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError... with a message for people
        raise ConfigError(f"cannot join the Ray cluster at {address}: {exc}") from None
    try:
        task = ray.remote(num_cpus=1)(run_point)
        refs = {task.remote(p.scenario, engine): p for p in points}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                on_done(refs[ref], _result(refs[ref], engine, ray.get(ref)))
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fails fast when `address` (HOST:PORT or ray://HOST:PORT) does not answer: Ray itself retries for
    minutes."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" and the like: Ray resolves them itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {exc.strerror or exc}") from None


def run_sweep(
    points: list[SweepPoint],
    engine: Engine,
    out: Path,
    *,
    scenario_name: str,
    parameters: list[str],
    workers: int | None = None,
    ray_address: str | None = None,
    reports: bool = False,
    on_done: Callable[[SweepPoint, RunResult], None] | None = None,
) -> Path:
    """Runs every point, writes each run under `out/runs/NAME/`, then the sweep's table and report."""
    from bme.scenario.outputs import RUNS_DIR, SWEEP_FILE, write_run
    from bme.scenario.report import build_run_report, build_sweep_report

    out.mkdir(parents=True, exist_ok=True)
    (out / RUNS_DIR).mkdir(exist_ok=True)

    def done(point: SweepPoint, result: RunResult) -> None:
        directory = out / RUNS_DIR / point.name
        write_run(directory, result, point.text)
        if reports:
            build_run_report(directory)
        if on_done is not None:
            on_done(point, result)

    if ray_address:
        run_ray(points, engine, ray_address, done)
    else:
        run_local(points, engine, workers or os.cpu_count() or 1, done)
    meta = {
        "scenario": scenario_name,
        "engine": engine,
        "executor": f"ray {ray_address}" if ray_address else "local processes",
        "parameters": parameters,
        "points": [{"name": p.name, "overrides": p.overrides} for p in points],
    }
    (out / SWEEP_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return build_sweep_report(out)

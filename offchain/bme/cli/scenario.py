"""`bme scenario ...` (run, sweep, report, check) and `bme bench scenario`.

Heavy modules (numpy, pandas, matplotlib, web3) are imported inside the commands, so `bme --help` stays quick.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bme.errors import ConfigError

if TYPE_CHECKING:
    from bme.scenario.runner import Engine

scenario_app = typer.Typer(
    help="Replay scenarios on the real contracts (anvil, in-process) or the reference model; sweep; report.",
    no_args_is_help=True,
)
console = Console()
ENGINE_HELP = (
    "anvil or inprocess (the contracts on a fresh devnet), or model (the pure-Python reference model)."
)


def _engine(value: str) -> Engine:
    from bme.scenario.runner import ENGINES

    if value not in ENGINES:
        raise ConfigError(f"--chain {value!r}: expected one of {', '.join(ENGINES)}")
    return value


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@scenario_app.command("run")
def run_command(
    file: Annotated[Path, typer.Argument(help="The scenario file (YAML).")],
    chain: Annotated[str, typer.Option("--chain", help=ENGINE_HELP)] = "anvil",
    out: Annotated[Path | None, typer.Option(help="Output directory (default runs/NAME-CHAIN).")] = None,
    seed: Annotated[int | None, typer.Option(help="Replace the file's random seed.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Replay only the first N epochs.", min=1)] = None,
    report: Annotated[bool, typer.Option(help="Build the HTML report and plots.")] = True,
) -> None:
    """Replay a scenario: a fresh devnet, the contracts deployed, simulated users and operators, epoch by
    epoch."""
    from bme.scenario.loading import read_raw, validate
    from bme.scenario.outputs import timing, write_run
    from bme.scenario.report import build_run_report
    from bme.scenario.runner import run_scenario

    engine = _engine(chain)
    raw = read_raw(file)
    if seed is not None:
        raw["seed"] = seed
    s = validate(raw, file.parent, str(file))
    text = file.read_text() if seed is None else _with_seed(file.read_text(), seed)
    target = out or Path("runs") / f"{s.name}-{engine}"
    total = min(epochs or s.epochs, s.epochs)
    with _progress() as progress:
        task = progress.add_task(f"{s.name} on {engine}: starting", total=total)

        def on_epoch(k: int, _: object) -> None:
            progress.update(task, completed=k + 1, description=f"{s.name} on {engine}")

        result = run_scenario(s, engine, on_epoch=on_epoch, epochs=epochs)
    write_run(target, result, text)
    t = timing(result)
    console.print(
        f"{len(result.records)} epochs, {result.jobs:,} jobs, {result.transactions:,} transactions in "
        f"{result.seconds:.2f} s (+{result.setup_seconds:.2f} s setup): {t['epochs_per_second']} epochs/s"
    )
    if report:
        console.print(f"report: {build_run_report(target)}")
    console.print(f"tables: {target / 'epochs.csv'}, {target / 'epochs.parquet'}")


def _with_seed(text: str, seed: int) -> str:
    """The scenario text with its `seed:` line replaced by `seed` (added when absent)."""
    import re

    line = f"seed: {seed}  # from --seed"
    replaced, n = re.subn(r"^seed:.*$", line, text, count=1, flags=re.MULTILINE)
    return replaced if n else f"{text.rstrip()}\n{line}\n"


@scenario_app.command("sweep")
def sweep_command(
    file: Annotated[Path, typer.Argument(help="The scenario file (YAML).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="PARAMETER=V1,V2,...: a dotted path into the file and its values (repeat for a grid). "
            "Without --set, the file's own sweep: section.",
        ),
    ] = None,
    chain: Annotated[str, typer.Option("--chain", help=ENGINE_HELP)] = "model",
    workers: Annotated[
        int | None, typer.Option(help="Local processes (default: one per core).", min=1)
    ] = None,
    ray: Annotated[
        str | None, typer.Option("--ray", help="Run on the Ray cluster at ADDRESS instead.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default runs/NAME-sweep).")] = None,
    reports: Annotated[bool, typer.Option(help="Also build each run's own report.")] = False,
) -> None:
    """Run every combination of parameter values, in parallel, and compare them."""
    from bme.scenario.loading import read_raw
    from bme.scenario.sweep import grid, parse_sets, run_sweep, sets_from_scenario

    engine = _engine(chain)
    raw = read_raw(file)
    sets = parse_sets(set_) if set_ else sets_from_scenario(raw)
    if not sets:
        raise ConfigError(f"{file}: nothing to sweep: give --set PARAMETER=V1,V2 or a sweep: section")
    points = grid(raw, file.parent, sets, str(file))
    name = str(raw.get("name", file.stem))
    target = out or Path("runs") / f"{name}-sweep"
    with _progress() as progress:
        task = progress.add_task(f"{len(points)} runs on {engine}", total=len(points))
        report = run_sweep(
            points,
            engine,
            target,
            scenario_name=name,
            parameters=[p for p, _ in sets],
            workers=workers,
            ray_address=ray,
            reports=reports,
            on_done=lambda point, _: progress.advance(task),
        )
    console.print(f"report: {report}")
    console.print(f"table: {target / 'sweep.csv'}")


@scenario_app.command("report")
def report_command(
    directory: Annotated[Path, typer.Argument(help="A run's or a sweep's output directory.")],
) -> None:
    """Rebuild the plots and the HTML report of a run or a sweep from its files."""
    from bme.scenario.report import build_report

    console.print(f"report: {build_report(directory)}")


@scenario_app.command("check")
def check_command(file: Annotated[Path, typer.Argument(help="The scenario file (YAML).")]) -> None:
    """Validate a scenario file and print what it describes."""
    from bme.scenario.loading import load_scenario
    from bme.scenario.prices import price_path
    from bme.scenario.runner import random_streams

    s = load_scenario(file)
    path = price_path(s, random_streams(s.seed)[0])
    low, high = min(path.market) / 10**18, max(path.market) / 10**18
    users = sum(g.users for g in s.demand.groups)
    operators = sum(o.count for o in s.operators)
    jobs = sum(g.jobs_per_epoch for g in s.demand.groups) * s.epochs
    console.print(
        f"{file}: valid. {s.name}: {s.epochs} epochs of {s.epoch_length} s, price {s.price.kind}, "
        f"${low:,.4g} to ${high:,.4g}, {users} users, {operators} operators, about {jobs:,.0f} jobs at base "
        f"demand, seed {s.seed}"
    )


def bench_scenario_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    scenario: Annotated[Path | None, typer.Option(help="Scenario (default scenarios/baseline.yaml).")] = None,
    inprocess_epochs: Annotated[int, typer.Option(help="Epochs replayed in-process.", min=1)] = 20,
    repeats: Annotated[int, typer.Option(help="Model runs (the fastest counts).", min=1)] = 3,
) -> None:
    """Replay speed: epochs and transactions per second on anvil and in-process, and the reference model's."""
    from bme.scenario.bench import measure

    with console.status("benchmarking scenario replays") as status:
        figures = measure(
            scenario, inprocess_epochs, repeats, lambda step: status.update(f"replaying: {step}")
        )
    if json_output:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        console.print_json(json.dumps(figures))

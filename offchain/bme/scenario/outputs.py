"""A run's directory: the tidy per-epoch table (CSV and Parquet), the scenario as run, the versions used, the
run's cost; and reading it back.

`epochs.csv`, `epochs.parquet` and `scenario.yaml` depend only on the scenario file and its seed: the same
bytes on every engine (anvil, in-process, the reference model), which is what comparing engines compares.
`run.json` records how the run was made, the engine and the software's versions (anvil's on anvil), so it is
the same only for runs on one engine with the same software. `timing.json` holds what varies between runs
(seconds, gas).
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bme import __version__
from bme.errors import ConfigError
from bme.scenario.records import records_table, wash_summary

if TYPE_CHECKING:
    import pandas as pd

    from bme.scenario.runner import RunResult

EPOCHS_CSV, EPOCHS_PARQUET = "epochs.csv", "epochs.parquet"
SCENARIO_FILE, RUN_FILE, TIMING_FILE = "scenario.yaml", "run.json", "timing.json"
#: A sweep's directory: one run directory per combination under `RUNS_DIR`, and what was swept.
RUNS_DIR, SWEEP_FILE = "runs", "sweep.json"
PACKAGES = ("numpy", "pandas", "pyarrow", "matplotlib", "pydantic", "web3", "eth-abi", "py-evm", "eth-tester")


@cache
def contracts_digest() -> str:
    """SHA-256 over the compiled contracts' names and bytecode: which contracts a run used."""
    from bme.chain.artifacts import artifacts

    h = hashlib.sha256()
    for name, art in sorted(artifacts().items()):
        h.update(name.encode() + b"\0" + art.bytecode.encode() + b"\0")
    return h.hexdigest()


@cache
def anvil_version() -> str:
    """anvil's version line, or "not found"."""
    from bme.chain.devnet import find_anvil

    exe = find_anvil()
    if exe is None:
        return "not found"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not runnable"
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


def versions(engine: str) -> dict[str, str]:
    """The software a run used."""
    out = {"bme": __version__, "python": platform.python_version(), "contracts_sha256": contracts_digest()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    if engine == "anvil":
        out["anvil"] = anvil_version()
    return out


def write_run(out: Path, result: RunResult, scenario_text: str) -> pd.DataFrame:
    """Writes a run's table, scenario, versions and timing to `out`; returns the table."""
    out.mkdir(parents=True, exist_ok=True)
    table = records_table(result.records)
    table.to_csv(out / EPOCHS_CSV, index=False, lineterminator="\n")
    table.to_parquet(out / EPOCHS_PARQUET, index=False, engine="pyarrow", compression="zstd")
    (out / SCENARIO_FILE).write_text(scenario_text)
    s = result.scenario
    run = {
        "scenario": s.name,
        "description": s.description,
        "seed": s.seed,
        "engine": result.engine,
        "epochs": len(result.records),
        "epoch_length_s": s.epoch_length,
        "scenario_sha256": hashlib.sha256(scenario_text.encode()).hexdigest(),
        "versions": versions(result.engine),
    }
    washers = sum(o.count for o in s.operators if o.wash is not None and o.wash.usd_per_epoch)
    if washers:
        idlers = sum(o.count for o in s.operators if o.wash is not None and not o.wash.usd_per_epoch)
        run["wash"] = wash_summary(table, washers, idlers)
    (out / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    (out / TIMING_FILE).write_text(json.dumps(timing(result), indent=2, sort_keys=True) + "\n")
    return table


def timing(result: RunResult) -> dict[str, Any]:
    """What a run cost: seconds for the setup (devnet and deployment) and the epochs, rates, gas."""
    epochs = len(result.records)
    seconds = result.seconds
    return {
        "engine": result.engine,
        "setup_seconds": round(result.setup_seconds, 4),
        "epoch_seconds": round(seconds, 4),
        "epochs": epochs,
        "epochs_per_second": round(epochs / seconds, 2) if seconds else None,
        "transactions": result.transactions,
        "transactions_per_second": round(result.transactions / seconds, 1) if seconds else None,
        "gas_used": result.gas_used,
        "jobs": result.jobs,
    }


def read_table(out: Path) -> pd.DataFrame:
    """A run's table, from Parquet when present, else CSV."""
    import pandas as pd

    if (out / EPOCHS_PARQUET).exists():
        return pd.read_parquet(out / EPOCHS_PARQUET)
    if (out / EPOCHS_CSV).exists():
        return pd.read_csv(out / EPOCHS_CSV)
    raise ConfigError(f"{out} holds no run: neither {EPOCHS_PARQUET} nor {EPOCHS_CSV}")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file of a run directory, or {} when absent."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}

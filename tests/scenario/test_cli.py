"""`bme scenario run|sweep|report|check` and `bme bench scenario` as real processes: the happy paths, and the
failures that must be one line on stderr with exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.scenario.helpers import small, write


def bme(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BME_")} | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bme.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_run_on_anvil_then_rebuild_the_report(tmp_path: Path) -> None:
    path = write(tmp_path, small())
    result = bme("scenario", "run", str(path), "--epochs", "3", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 epochs" in result.stdout and "report:" in result.stdout
    out = tmp_path / "out"
    assert len(pd.read_csv(out / "epochs.csv")) == 3
    (out / "report.html").unlink()
    result = bme("scenario", "report", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "report.html").exists()


def test_run_on_the_model_with_another_seed_records_it(tmp_path: Path) -> None:
    path = write(tmp_path, small())
    result = bme(
        "scenario", "run", str(path), "--chain", "model", "--seed", "99", "--no-report", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "runs" / "small-model"
    assert "seed: 99" in (out / "scenario.yaml").read_text()
    assert not (out / "report.html").exists()


def test_sweep_from_the_command_line(tmp_path: Path) -> None:
    raw = small()
    raw["sweep"] = {"protocol.mint_spread_bps": [0, 100]}
    path = write(tmp_path, raw)
    result = bme("scenario", "sweep", str(path), "--workers", "2", "--out", "sw", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "sw" / "sweep.csv")) == 2
    result = bme(
        "scenario",
        "sweep",
        str(path),
        "--set",
        "seed=1,2",
        "--set",
        "relayer.settle_batch=1,50",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "runs" / "small-sweep" / "sweep.csv")) == 4


def test_mistakes_are_one_line_with_exit_code_one(tmp_path: Path) -> None:
    raw = small()
    raw["demand"]["groups"][0]["users"] = "many"
    bad = write(tmp_path, raw, "bad.yaml")
    assert "demand.groups.0.users: Input should be a valid integer" in one_line_error(
        bme("scenario", "run", str(bad), "--chain", "model", cwd=tmp_path)
    )
    good = write(tmp_path, small())
    assert "--chain 'ganache'" in one_line_error(
        bme("scenario", "run", str(good), "--chain", "ganache", cwd=tmp_path)
    )
    assert "cannot read the scenario file" in one_line_error(
        bme("scenario", "check", "nope.yaml", cwd=tmp_path)
    )
    assert "holds no run" in one_line_error(bme("scenario", "report", ".", cwd=tmp_path))
    assert "nothing to sweep" in one_line_error(bme("scenario", "sweep", str(good), cwd=tmp_path))
    assert "unknown key" in one_line_error(
        bme("scenario", "sweep", str(good), "--set", "protocol.spread=1,2", cwd=tmp_path)
    )
    assert "expected PARAMETER=VALUE1,VALUE2" in one_line_error(
        bme("scenario", "sweep", str(good), "--set", "seed", cwd=tmp_path)
    )


def test_check_and_bench_are_listed(tmp_path: Path) -> None:
    good = write(tmp_path, small())
    result = bme("scenario", "check", str(good), cwd=tmp_path)
    assert result.returncode == 0 and "valid" in result.stdout
    result = bme("bench", "scenario", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--json" in result.stdout

"""`bme scenario sweep --ray ADDRESS` against a real local Ray head (Ray is an optional extra)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from bme.chain.devnet import free_port
from bme.errors import ConfigError
from bme.scenario.sweep import grid, parse_sets, run_sweep
from tests.scenario.helpers import small

ray = pytest.importorskip("ray", reason="Ray is not installed (an optional extra: pip install 'bme[ray]')")


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    exe = Path(sys.executable).parent / "ray"
    if not exe.exists():
        pytest.skip("the ray command is not installed beside this Python")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="bmeray")  # short: Ray's socket paths must fit 107 bytes
    head = subprocess.Popen(
        [
            str(exe),
            "start",
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--temp-dir",
            temp,
            "--block",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if head.poll() is not None:
                pytest.fail("the Ray head exited at start")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the Ray head did not listen within 90 s")
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_runs_as_ray_tasks_on_a_real_head(ray_head: str, tmp_path: Path) -> None:
    points = grid(small(), tmp_path, parse_sets(["seed=1,2,3"]))
    done: list[str] = []
    run_sweep(
        points,
        "model",
        tmp_path / "out",
        scenario_name="small",
        parameters=["seed"],
        ray_address=ray_head,
        on_done=lambda p, _: done.append(p.name),
    )
    assert sorted(done) == [p.name for p in points]
    assert len(pd.read_csv(tmp_path / "out" / "sweep.csv")) == 3
    assert "ray" in (tmp_path / "out" / "sweep.json").read_text()


def test_an_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    points = grid(small(), tmp_path, parse_sets(["seed=1"]))
    with pytest.raises(ConfigError, match="cannot join the Ray cluster"):
        run_sweep(
            points,
            "model",
            tmp_path / "out",
            scenario_name="small",
            parameters=["seed"],
            ray_address=f"127.0.0.1:{free_port()}",
        )

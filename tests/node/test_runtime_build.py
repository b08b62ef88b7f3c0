"""The installed model runtime was built as the installer chose: a portable baseline, never this CPU's own.

llama-cpp-python is imported only in subprocesses here: a build that dies with SIGILL fails these tests
with the signal's name instead of killing pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from bme.node.exits import describe_exit
from bme.node.runtime import cpu_flags, parse_system_info

pytestmark = pytest.mark.pure

MARKER = Path(sys.prefix) / "model-runtime.json"


def run_python(*args: str) -> str:
    """Runs Python in a subprocess; fails, naming the signal, if it crashes."""
    try:
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"python {' '.join(args)} did not finish within 120s")
    assert done.returncode == 0, (
        f"python {' '.join(args)} {describe_exit(done.returncode)} (return code {done.returncode}):\n"
        + done.stderr[-2000:]
    )
    return done.stdout


@pytest.fixture(scope="module")
def marker() -> dict[str, Any]:
    if not MARKER.is_file():
        pytest.fail(
            f"{MARKER} is missing: llama-cpp-python was installed by hand, so nothing says which CPU it was "
            "built for. Run `make setup` (or `make clean setup`) to build it for a portable baseline."
        )
    data: dict[str, Any] = json.loads(MARKER.read_text())
    return data


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """`python -m bme.node.runtime`: `runtime_report()` (what `bme operator serve` logs at start) and
    llama.cpp's raw `llama_print_system_info()`, from a process of their own."""
    data: dict[str, Any] = json.loads(run_python("-m", "bme.node.runtime"))
    return data


@pytest.fixture(scope="module")
def features(report: dict[str, Any]) -> frozenset[str]:
    return parse_system_info(report["system_info"])


def test_marker_records_a_known_variant_of_the_pinned_runtime(marker: dict[str, Any]) -> None:
    assert set(marker) >= {"package", "version", "variant", "cmake_args", "machine", "key"}
    assert marker["package"] == "llama-cpp-python"
    assert marker["variant"] in {"x86-64-avx2", "x86-64-scalar", "armv8"}
    assert version("llama-cpp-python") == marker["version"]
    assert "-DGGML_NATIVE=OFF" in marker["cmake_args"]


def test_runtime_has_no_instruction_set_beyond_its_baseline(
    marker: dict[str, Any], features: frozenset[str]
) -> None:
    variant = marker["variant"]
    if variant == "x86-64-avx2":
        beyond = sorted(f for f in features if f.startswith(("AVX512", "AVX_VNNI", "AMX")))
        assert not beyond, f"the x86-64-avx2 build has {beyond} compiled in: rebuild with `make clean setup`"
        assert {"AVX2", "FMA", "F16C"} <= features, f"the x86-64-avx2 build lacks AVX2/FMA/F16C: {features}"
    elif variant == "x86-64-scalar":
        avx = sorted(f for f in features if f.startswith(("AVX", "AMX", "FMA", "F16C")))
        assert not avx, f"the scalar build has {avx} compiled in"
    else:
        assert not {f for f in features if f.startswith(("SVE", "SME"))}, features


def test_this_cpu_has_every_instruction_set_the_runtime_uses(features: frozenset[str]) -> None:
    flags = cpu_flags()
    if flags is None:
        pytest.skip("this system does not list its CPU's flags")
    needed = {
        "AVX": "avx",
        "AVX2": "avx2",
        "FMA": "fma",
        "F16C": "f16c",
        "AVX512": "avx512f",
        "NEON": "asimd",
    }
    lacking = sorted(f for f, flag in needed.items() if f in features and flag not in flags)
    assert not lacking, f"the runtime uses {lacking}, which this CPU lacks: it would die with SIGILL"


def test_runtime_report_agrees(
    marker: dict[str, Any], report: dict[str, Any], features: frozenset[str]
) -> None:
    """What `bme operator serve` prints at start, from `bme.node.runtime.runtime_report()`."""
    assert report["variant"] == marker["variant"]
    assert set(report["features"]) == features
    assert report["fits"] is True, report

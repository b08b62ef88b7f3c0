"""Reading the model runtime's build (system info, baseline, CPU flags), naming crashes, fault switches."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bme.node.exits import describe_exit, exit_hint, signal_name
from bme.node.faults import parse_faults
from bme.node.runtime import BASELINES, RuntimeReport, check_build, cpu_flags, parse_system_info, read_marker

pytestmark = pytest.mark.pure

# What llama-cpp-python 0.3.36 prints: the CPU backend's compiled-in features; absent ones are not listed.
AVX2_BUILD = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | LLAMAFILE = 1 | OPENMP = 1 | "
    "REPACK = 1 | "
)
NATIVE_BUILD = (
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "AVX512 = 1 | AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
)
SCALAR_BUILD = "CPU : SSE3 = 1 | SSSE3 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
OLD_STYLE = "AVX = 1 | AVX_VNNI = 0 | AVX2 = 1 | AVX512 = 0 | FMA = 1 | F16C = 1 | NEON = 0 | "
OLD_CPU = frozenset({"sse", "sse2", "pni", "ssse3", "avx"})  # a Sandy Bridge: AVX, but no AVX2/FMA/F16C
MODERN_CPU = frozenset({"pni", "ssse3", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "amx_int8"})


def test_system_info_features_are_the_ones_switched_on() -> None:
    assert parse_system_info(AVX2_BUILD) == {
        "SSE3",
        "SSSE3",
        "AVX",
        "AVX2",
        "F16C",
        "FMA",
        "LLAMAFILE",
        "OPENMP",
        "REPACK",
    }
    assert parse_system_info(OLD_STYLE) == {"AVX", "AVX2", "FMA", "F16C"}  # "= 0" means not built in
    assert parse_system_info("") == frozenset()


def test_a_portable_avx2_build_fits_its_baseline() -> None:
    report = check_build(AVX2_BUILD, "x86-64-avx2", MODERN_CPU, runtime_version="0.3.36")
    assert report.fits is True
    assert report.beyond_baseline == report.missing_from_baseline == report.cpu_lacks == []
    line = report.line()
    assert line.startswith(
        "model runtime: llama-cpp-python 0.3.36, built for x86-64-avx2; features: AVX AVX2"
    )
    assert line.endswith("; fits")


def test_a_native_build_is_beyond_the_avx2_baseline() -> None:
    report = check_build(NATIVE_BUILD, "x86-64-avx2", MODERN_CPU, runtime_version="0.3.36")
    assert report.fits is False
    assert report.beyond_baseline == [
        "AMX_INT8",
        "AVX512",
        "AVX512_BF16",
        "AVX512_VBMI",
        "AVX512_VNNI",
        "AVX_VNNI",
        "BMI2",
    ]
    assert "DOES NOT FIT: AMX_INT8 is beyond the baseline" in report.line()


def test_a_build_the_cpu_cannot_run_is_named() -> None:
    """What the user's machine had: a build with instructions its CPU lacked (then SIGILL)."""
    report = check_build(AVX2_BUILD, "x86-64-avx2", OLD_CPU, runtime_version="0.3.36")
    assert report.fits is False
    assert report.cpu_lacks == ["AVX2", "F16C", "FMA"]
    assert "this CPU lacks AVX2" in report.line()
    assert check_build(AVX2_BUILD, "x86-64-avx2", None, runtime_version=None).cpu_lacks == []  # not Linux


def test_the_scalar_baseline_allows_no_avx_at_all() -> None:
    assert check_build(SCALAR_BUILD, "x86-64-scalar", OLD_CPU, runtime_version=None).fits is True
    avx = check_build(AVX2_BUILD, "x86-64-scalar", MODERN_CPU, runtime_version=None)
    assert avx.beyond_baseline == ["AVX", "AVX2", "F16C", "FMA"]
    assert set(BASELINES) == {"x86-64-avx2", "x86-64-scalar", "armv8"}


def test_an_unrecorded_build_says_how_to_fix_it() -> None:
    report = check_build(AVX2_BUILD, None, MODERN_CPU, runtime_version="0.3.36")
    assert report.fits is None
    assert "no model-runtime.json" in report.line() and "make setup" in report.line()
    assert RuntimeReport.from_dict(json.loads(json.dumps(report.as_dict()))) == report


def test_marker_and_cpu_flags_are_read_from_their_files(tmp_path: Path) -> None:
    assert read_marker(tmp_path) is None
    (tmp_path / "model-runtime.json").write_text('{"variant": "armv8", "version": "0.3.36"}')
    assert read_marker(tmp_path) == {"variant": "armv8", "version": "0.3.36"}
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx avx2\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx", "avx2"}
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")
    assert cpu_flags(cpuinfo) == {"fp", "asimd", "asimddp"}
    assert cpu_flags(tmp_path / "missing") is None


def test_exit_codes_are_described_with_the_signal_name() -> None:
    assert signal_name(-signal.SIGILL) == "SIGILL"
    assert signal_name(0) is None and signal_name(3) is None
    assert describe_exit(-signal.SIGILL) == "crashed with SIGILL (illegal instruction)"
    assert describe_exit(-signal.SIGSEGV) == "crashed with SIGSEGV (segmentation fault)"
    assert describe_exit(2) == "exited with code 2"
    hint = exit_hint(-signal.SIGILL)
    assert hint is not None and "make clean setup" in hint
    assert exit_hint(1) is None


def test_fault_injection_switch_is_parsed_strictly() -> None:
    assert parse_faults("") == {}
    assert parse_faults("sigill-at-load") == {"load": signal.SIGILL}
    assert parse_faults("sigsegv-at-warmup, sigill-at-load") == {
        "warmup": signal.SIGSEGV,
        "load": signal.SIGILL,
    }
    for bad in ("sigill", "sigill-at-lunch", "sigfoo-at-load"):
        with pytest.raises(ValueError, match="BME_NODE_FAULT_INJECT"):
            parse_faults(bad)

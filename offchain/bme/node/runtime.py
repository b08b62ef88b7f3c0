"""Which build of the model runtime (llama-cpp-python) is installed, and whether it fits its CPU baseline.

llama-cpp-python is compiled on install. Built for the build machine's own instruction set, it can die with
SIGILL on another CPU, or even on the same one (an AMX tile instruction on a kernel that has not granted AMX
state). So the runtime is built for a named portable baseline ("variant"), recorded by the installer in
`model-runtime.json` next to the virtual environment's `sys.prefix`, and this module checks the build
against it: what llama.cpp says it was compiled with (`llama_print_system_info`), beyond or short of the
variant's baseline, and (on Linux) what this CPU lacks of it.

`runtime_report()` imports llama_cpp, so the node calls it inside a model worker (it travels to the server
in the worker's first message); `python -m bme.node.runtime` prints it as JSON from a process of its own.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

MARKER = "model-runtime.json"
"""Written by tools/install-model-runtime.sh into the virtual environment (`sys.prefix`)."""

SETUP_HINT = "run `make setup` (it builds llama-cpp-python for a portable CPU baseline and records which)"


@dataclass(frozen=True)
class Baseline:
    """What a variant's build must have compiled in, and what it must not (by feature name or prefix)."""

    required: frozenset[str]
    forbidden_prefixes: tuple[str, ...]

    def beyond(self, features: frozenset[str]) -> list[str]:
        return sorted(f for f in features if f.startswith(self.forbidden_prefixes))

    def missing(self, features: frozenset[str]) -> list[str]:
        return sorted(self.required - features)


BASELINES: dict[str, Baseline] = {
    # Every x86-64 CPU since 2013-2015: AVX2, FMA and F16C, and nothing of AVX-512, AVX-VNNI, AMX or BMI2.
    "x86-64-avx2": Baseline(
        required=frozenset({"AVX", "AVX2", "FMA", "F16C"}),
        forbidden_prefixes=("AVX512", "AVX_VNNI", "AMX", "BMI2"),
    ),
    # SSE only: no AVX of any kind (the prefix also covers AVX2, AVX512* and AVX_VNNI).
    "x86-64-scalar": Baseline(required=frozenset(), forbidden_prefixes=("AVX", "AMX", "FMA", "F16C", "BMI2")),
    # The compiler's default armv8-a: NEON, and none of the optional vector extensions many cores lack.
    "armv8": Baseline(required=frozenset({"NEON"}), forbidden_prefixes=("SVE", "SME")),
}

#: llama.cpp's feature names and the Linux /proc/cpuinfo flag a CPU must show to run code that uses them.
CPU_FLAGS: dict[str, str] = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AMX_INT8": "amx_int8",
    "NEON": "asimd",
    "FP16_VA": "asimdhp",
    "DOTPROD": "asimddp",
    "MATMUL_INT8": "i8mm",
    "SVE": "sve",
    "SME": "sme",
}


def parse_system_info(text: str) -> frozenset[str]:
    """The features `llama_print_system_info()` reports switched on (value other than 0).

    The text is `|`-separated `NAME = value` pairs, grouped by backend (`CPU : SSE3 = 1 | AVX = 1 | ...`).
    A feature llama.cpp was compiled without is either absent or `= 0`, depending on the version.
    """
    features: set[str] = set()
    for part in text.split("|"):
        name, sep, value = part.rpartition("=")
        if not sep:
            continue
        name = name.rsplit(":", 1)[-1].strip()  # drops a "CPU :" group label
        if name and value.strip() not in ("", "0"):
            features.add(name)
    return frozenset(features)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """This CPU's feature flags, or None where the kernel does not list them (not Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 and arm64 spellings
            return frozenset(value.split())
    return None


def read_marker(prefix: Path | None = None) -> dict[str, Any] | None:
    """The installer's record of the runtime build, or None if there is none (installed by hand)."""
    path = Path(prefix or sys.prefix) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class RuntimeReport:
    """The installed model runtime: its version, its build variant, and what its build contains."""

    version: str | None
    variant: str | None
    """None when `model-runtime.json` is missing: then nothing says what the build was meant to be."""
    features: list[str]
    beyond_baseline: list[str] = field(default_factory=list)
    missing_from_baseline: list[str] = field(default_factory=list)
    cpu_lacks: list[str] = field(default_factory=list)
    """Compiled-in features this CPU does not list: code using them dies with SIGILL (Linux only)."""

    @property
    def fits(self) -> bool | None:
        """Whether the build is exactly its variant's baseline and this CPU can run it (None: no variant)."""
        if self.variant is None:
            return None
        return not (self.beyond_baseline or self.missing_from_baseline or self.cpu_lacks)

    def line(self) -> str:
        """One line for the node's log: which build is running, and whether it fits."""
        head = f"model runtime: llama-cpp-python {self.version or '(unknown version)'}"
        build = (
            f"built for {self.variant}" if self.variant else f"build unrecorded (no {MARKER}: {SETUP_HINT})"
        )
        features = " ".join(self.features) or "none"
        problems = [
            *(f"{f} is beyond the baseline" for f in self.beyond_baseline),
            *(f"{f} is missing from the baseline" for f in self.missing_from_baseline),
            *(f"this CPU lacks {f}" for f in self.cpu_lacks),
        ]
        verdict = "fits" if self.fits else "" if self.fits is None else "DOES NOT FIT: " + "; ".join(problems)
        return f"{head}, {build}; features: {features}" + (f"; {verdict}" if verdict else "")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"fits": self.fits}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeReport:
        return cls(
            version=data.get("version"),
            variant=data.get("variant"),
            features=list(data.get("features", [])),
            beyond_baseline=list(data.get("beyond_baseline", [])),
            missing_from_baseline=list(data.get("missing_from_baseline", [])),
            cpu_lacks=list(data.get("cpu_lacks", [])),
        )


def check_build(
    system_info: str, variant: str | None, flags: frozenset[str] | None, *, runtime_version: str | None
) -> RuntimeReport:
    """The report on a runtime with this system info, built as `variant`, on a CPU with these `flags`."""
    features = parse_system_info(system_info)
    baseline = BASELINES.get(variant) if variant else None
    lacks = (
        sorted(f for f in features if f in CPU_FLAGS and CPU_FLAGS[f] not in flags)
        if flags is not None
        else []
    )
    return RuntimeReport(
        version=runtime_version,
        variant=variant,
        features=sorted(features),
        beyond_baseline=baseline.beyond(features) if baseline else [],
        missing_from_baseline=baseline.missing(features) if baseline else [],
        cpu_lacks=lacks,
    )


def system_info() -> str:
    """llama.cpp's own account of its build. Imports llama_cpp: call it in a worker or a subprocess."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    return info.decode("utf-8", errors="replace") if isinstance(info, bytes) else str(info)


def runtime_report() -> RuntimeReport:
    """The installed runtime's report (imports llama_cpp: call it in a worker or a subprocess)."""
    marker = read_marker()
    variant = marker.get("variant") if marker else None
    try:
        runtime_version: str | None = version("llama-cpp-python")
    except PackageNotFoundError:
        runtime_version = None
    return check_build(
        system_info(),
        variant if isinstance(variant, str) else None,
        cpu_flags(),
        runtime_version=runtime_version,
    )


def main() -> None:
    """`python -m bme.node.runtime`: the report as one JSON object, with llama.cpp's raw system info."""
    report = runtime_report()
    sys.stdout.write(json.dumps(report.as_dict() | {"system_info": system_info()}) + "\n")


if __name__ == "__main__":
    main()

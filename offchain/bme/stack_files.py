"""Where `bme stack up` keeps its files: the deployment, the logs, the relayer's database, the node's journal.

Outside any checkout, so that a local protocol never leaves files in a working tree: `--dir`, else
`BME_STACK_DIR`, else `~/.bme/stack`. The other commands find the running stack's deployment there when no
`--deployment`/`BME_DEPLOYMENT` is given and the working directory has no `deployment.json`.
"""

from __future__ import annotations

import os
from pathlib import Path

STACK_DIR_ENV = "BME_STACK_DIR"
DEFAULT_STACK_DIR = Path("~/.bme/stack")
DEPLOYMENT_NAME = "deployment.json"


def stack_dir(directory: Path | None = None) -> Path:
    """The stack directory: `directory`, else `BME_STACK_DIR`, else the default; `~` expanded."""
    if directory is None:
        directory = Path(os.environ.get(STACK_DIR_ENV) or DEFAULT_STACK_DIR)
    return directory.expanduser()


def stack_deployment(directory: Path | None = None) -> Path:
    """The deployment file a running `bme stack up` writes."""
    return stack_dir(directory) / DEPLOYMENT_NAME

"""What the chain-reading commands share: options, amounts and the connection to the protocol.

Every command that reads the chain takes `--rpc-url`/`BME_RPC_URL` and `--deployment`/`BME_DEPLOYMENT` with
the same defaults, reads a keystore's password with `bme.wallet.keystore.read_password` (never from the
command line), and turns a missing deployment, another chain or a lost connection into one `BmeError`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from bme import display
from bme.chain.client import ChainClient
from bme.chain.deploy import Deployment, Protocol
from bme.chain.failures import transport_problem
from bme.errors import BmeError, ChainError, ConfigError

RpcOpt = Annotated[
    str, typer.Option("--rpc-url", envvar="BME_RPC_URL", help="JSON-RPC endpoint [BME_RPC_URL].")
]
DeploymentOpt = Annotated[
    Path,
    typer.Option(
        "--deployment", envvar="BME_DEPLOYMENT", help="Addresses written by the deployment [BME_DEPLOYMENT]."
    ),
]
DEFAULT_RPC = "http://127.0.0.1:8545"
DEFAULT_DEPLOYMENT = Path("deployment.json")


def parse_amount(text: str, decimals: int, unit: str) -> int:
    """`text` (a decimal number of whole units, e.g. '1000' or '0.5') in base units."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"{text!r} is not an amount of {unit}") from None
    scaled = value * 10**decimals
    if value < 0 or scaled != scaled.to_integral_value():
        raise ConfigError(f"{text!r} is not a valid amount of {unit} ({decimals} decimals at most)")
    return int(scaled)


def fmt(amount: int, decimals: int, unit: str) -> str:
    """`amount` base units as whole units of `unit`, exact and trimmed (`bme.display.amount`)."""
    return display.amount(amount, decimals, unit)


#: Dollars for people (`bme.display.usd`), here beside `fmt` for the commands.
usd = display.usd


@contextmanager
def chain_errors(rpc_url: str) -> Iterator[None]:
    """Transport failures in the middle of a command become one `ChainError`."""
    try:
        yield
    except BmeError:
        raise
    except (OSError, ConnectionError) as exc:
        raise ChainError(f"lost the connection to {rpc_url}: {transport_problem(exc)}") from None
    except Exception as exc:
        import requests

        if isinstance(exc, requests.RequestException):
            raise ChainError(f"lost the connection to {rpc_url}: {transport_problem(exc)}") from None
        raise


def load_deployment(path: Path) -> Deployment:
    """The deployment file at `path`, or a `ConfigError` saying what is wrong with it.

    The default path (`deployment.json` here), when absent, falls back to the running `bme stack up`'s."""
    if not path.exists() and path == DEFAULT_DEPLOYMENT:
        from bme.stack_files import stack_deployment

        if stack_deployment().exists():
            path = stack_deployment()
    if not path.exists():
        raise ConfigError(f"no deployment file at {path} (pass --deployment or set BME_DEPLOYMENT)")
    try:
        return Deployment.load(path)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a deployment file: {exc}") from None


def open_protocol(rpc_url: str, path: Path, deployment: Deployment | None = None) -> Protocol:
    """The protocol of the deployment file at `path` (or of `deployment`, already loaded from it) on the chain
    at `rpc_url`, which must be the chain the file was written for."""
    d = deployment if deployment is not None else load_deployment(path)
    client = ChainClient.connect(rpc_url)
    if client.chain_id != d.chain_id:
        raise ConfigError(f"{rpc_url} is chain {client.chain_id}, but {path} is for chain {d.chain_id}")
    try:
        return Protocol.at(client, d)
    except ValueError as exc:  # an empty or malformed address
        raise ConfigError(f"{path} lacks a contract address ({exc}): redeploy the protocol") from None


#: Where a command writes the OpenAPI schema it prints.
SchemaOutput = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")]


def write_schema(schema: dict[str, Any], output: Path | None) -> None:
    """An OpenAPI schema as the published files hold it: indented JSON and a final newline."""
    text = json.dumps(schema, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)

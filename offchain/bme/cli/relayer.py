"""`bme relayer run`: the relayer service, configured by options or `BME_RELAYER_*` environment variables.

The relayer's key comes from an encrypted keystore (`--keystore`, its password from `BME_PASSWORD` or a
prompt) or, for services whose secrets arrive in the environment, from `BME_RELAYER_PRIVATE_KEY`; never from
a command-line argument.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError
from rich.console import Console

from bme.cli.common import SchemaOutput, write_schema
from bme.errors import ConfigError

relayer_app = typer.Typer(help="The relayer: ingests payments, dispatches jobs to operators, settles.")
console = Console(stderr=True)

KEY_ENV = "BME_RELAYER_PRIVATE_KEY"


def relayer_account(keystore: Path | None) -> LocalAccount:
    """The relayer's signing account, from `BME_RELAYER_PRIVATE_KEY` or a keystore."""
    key = os.environ.get(KEY_ENV)
    if key:
        try:
            account: LocalAccount = Account.from_key(key)
        except (ValueError, TypeError):
            raise ConfigError(f"{KEY_ENV} is not a private key") from None
        return account
    if keystore is None:
        raise ConfigError(f"no relayer key: pass --keystore (password in BME_PASSWORD) or set {KEY_ENV}")
    from bme.wallet.keystore import load_account, read_password

    return load_account(keystore, read_password())


@relayer_app.callback()
def _relayer() -> None:
    """Keeps `run` a named subcommand."""


@relayer_app.command("run")
def run(
    rpc_url: Annotated[str | None, typer.Option(help="JSON-RPC endpoint [BME_RELAYER_RPC_URL].")] = None,
    ws_url: Annotated[str | None, typer.Option(help="WebSocket endpoint for new-block wake-ups.")] = None,
    deployment: Annotated[Path | None, typer.Option(help="The deployment's addresses file.")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL: sqlite:///relayer.db (default) or postgresql://...")
    ] = None,
    instance: Annotated[str | None, typer.Option(help="This relayer's stable name (leases).")] = None,
    confirmations: Annotated[
        int | None, typer.Option(help="Confirmation depth (0 on devnets, else 3).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="API address [BME_RELAYER_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="API port [BME_RELAYER_PORT, default 8088].")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Jobs per settlement transaction.")] = None,
    batch_age: Annotated[
        float | None, typer.Option(help="Settle a smaller batch after this many seconds.")
    ] = None,
    keystore: Annotated[
        Path | None, typer.Option(envvar="BME_KEYSTORE", help="The relayer's keystore [BME_KEYSTORE].")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "info",
) -> None:
    """Run the relayer until SIGINT or SIGTERM."""
    from bme.relayer.service import Relayer
    from bme.relayer.settings import RelayerSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options: dict[str, Any] = {
        "rpc_url": rpc_url,
        "ws_url": ws_url,
        "deployment": deployment,
        "database_url": database_url,
        "instance": instance,
        "confirmations": confirmations,
        "host": host,
        "port": port,
        "batch_size": batch_size,
        "batch_age_s": batch_age,
    }
    try:
        settings = RelayerSettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            f"relayer setting {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        ) from None
    account = relayer_account(keystore)

    async def main() -> None:
        relayer = Relayer(settings, account)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, relayer.stop)
        console.print(
            f"relayer {account.address} ({settings.instance}): chain {settings.rpc_url}, "
            f"store {settings.database_url.split('@')[-1]}, API http://{settings.host}:{settings.port}",
            soft_wrap=True,
        )
        await relayer.run()

    try:  # libuv's event loop where it installs: the relayer is I/O-bound, and uvloop costs less per callback
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


def bench_relayer_command(
    jobs: Annotated[
        int, typer.Option(help="Paid jobs to run (at least 1,000 for the published figure).")
    ] = 1000,
    rate: Annotated[float, typer.Option(help="Payments per second (0: back to back).")] = 0.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The relayer's added latency (payment receipt to operator) and CPU per job, on anvil, real node."""
    import json
    import sys

    from bme.bench.relayer import run_relayer_bench

    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    out = Console()
    with out.status("benchmarking the relayer") as status:
        figures = run_relayer_bench(
            jobs, progress=lambda m: status.update(f"benchmarking the relayer: {m}"), rate=max(rate, 0.0)
        )
    if json_output:
        sys.stdout.write(json.dumps(figures) + "\n")
    else:
        out.print_json(json.dumps(figures))


@relayer_app.command("openapi")
def openapi(output: SchemaOutput = None) -> None:
    """Print the relayer API's OpenAPI schema (what a running relayer serves at /openapi.json)."""
    from bme.chain.deploy import Deployment
    from bme.commitment import Domain
    from bme.relayer.api import ApiLimits, StandaloneService, create_api
    from bme.relayer.figures import ChainFigures
    from bme.relayer.store import JobStore

    zero = "0x" + "00" * 20
    deployment = Deployment(0, zero, zero, zero, zero, zero, zero, 0, 0, zero, zero)
    app = create_api(
        JobStore("sqlite://", owner="openapi"),
        Domain(0, zero),
        ApiLimits(max_request_bytes=1024, max_tokens_limit=1, rate_per_minute=1),
        StandaloneService(),
        extra_routes=ChainFigures("http://127.0.0.1:0", deployment).install,
    )
    write_schema(app.openapi(), output)

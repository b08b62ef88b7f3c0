"""`bme devnet fund|advance|price`: a devnet's conveniences, refused on any other chain.

`fund` hands out ETH and CMP from the devnet faucet (account 9, whose CMP reserve a devnet deployment mints),
`advance` moves the chain's clock (by seconds, to the end of the epoch, or past a job's deadline) and `price`
sets the oracle's price; both push a fresh price right away, since the oracle refuses a reading older than
30 s. They sign with the devnet's public keys (`bme.devnet_ops`), so they need no wallet password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from web3 import Web3

from bme import devnet_ops
from bme.chain.deploy import Protocol
from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    fmt,
    open_protocol,
    parse_amount,
    usd,
)
from bme.commitment import job_hex
from bme.display import local_time
from bme.errors import ConfigError
from bme.user.wallets import DEFAULT_WALLET_DIR, WalletDirOpt, resolve_wallet

devnet_app = typer.Typer(
    help="Devnet helpers (chain ids 31337 and 1337 only): fund wallets, move time, set the oracle price.",
    no_args_is_help=True,
)
console = Console(highlight=False)


def _devnet(rpc_url: str, deployment: Path) -> Protocol:
    protocol = open_protocol(rpc_url, deployment)
    devnet_ops.require_devnet(protocol.client)
    return protocol


def _when(timestamp: int) -> str:
    """A chain timestamp as a local date-time, with the unix seconds a contract call would take."""
    return f"{local_time(timestamp)} (unix {timestamp})"


def _refresh_price(protocol: Protocol) -> None:
    """After the clock moved: the oracle's current price, observed now, so burns and redemptions work."""
    try:
        feeder = devnet_ops.find_feeder(protocol)
    except ConfigError as exc:
        console.print(
            f"note: the oracle's price is stale until its feeder pushes one ({exc})", soft_wrap=True
        )
        return
    price, at = devnet_ops.push_price(protocol, feeder)
    console.print(
        f"oracle price {usd(price, 18)} per CMP pushed again at {at} by the feeder {feeder.address}"
    )


@devnet_app.command("fund")
def fund(
    wallet: Annotated[str, typer.Argument(help="A wallet's name, a keystore's path, or an address.")],
    eth: Annotated[str, typer.Option(help="ETH to send, for gas.")] = "1",
    cmp: Annotated[str, typer.Option(help="CMP to send, from the faucet's reserve.")] = "1000",
    wallet_dir_: WalletDirOpt = DEFAULT_WALLET_DIR,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Send ETH and CMP to a wallet from the devnet faucet (devnet account 9)."""
    wei, tokens = parse_amount(eth, 18, "ETH"), parse_amount(cmp, 18, "CMP")
    if not wei and not tokens:
        raise ConfigError("nothing to send: give --eth or --cmp more than 0")
    address: str
    if Web3.is_address(wallet):
        address, label = Web3.to_checksum_address(wallet), wallet
    else:
        w = resolve_wallet(wallet, wallet_dir_)
        address, label = w.address, f"wallet {w.label} ({w.address})"
    with chain_errors(rpc_url):
        protocol = _devnet(rpc_url, deployment)
        funded = devnet_ops.fund(protocol, address, eth=wei, cmp=tokens)
    for sent in funded.sent:
        console.print(f"transaction {sent.tx_hash}, gas used {sent.gas_used:,}", soft_wrap=True)
    console.print(
        f"{label} received {fmt(wei, 18, 'ETH')} and {fmt(tokens, 18, 'CMP')}; "
        f"it holds {fmt(funded.eth, 18, 'ETH')} and {fmt(funded.cmp, 18, 'CMP')}",
        soft_wrap=True,
    )


@devnet_app.command("advance")
def advance(
    seconds: Annotated[int | None, typer.Argument(help="Seconds to move the chain's clock forward.")] = None,
    to_epoch_end: Annotated[
        bool, typer.Option("--to-epoch-end", help="To the first second of the next epoch.")
    ] = False,
    to_deadline: Annotated[
        str | None, typer.Option("--to-deadline", metavar="JOB", help="To just past job JOB's deadline.")
    ] = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Move the chain's clock forward, mine a block there and push a fresh oracle price."""
    if sum((seconds is not None, to_epoch_end, to_deadline is not None)) != 1:
        raise ConfigError("give exactly one of SECONDS, --to-epoch-end or --to-deadline JOB")
    with chain_errors(rpc_url):
        protocol = _devnet(rpc_url, deployment)
        escrow = protocol.escrow.functions
        if seconds is not None:
            before, now = devnet_ops.advance(protocol.client, seconds=seconds)
        elif to_epoch_end:
            epoch = int(escrow.currentEpoch().call())
            before, now = devnet_ops.advance(protocol.client, to=devnet_ops.epoch_end(protocol))
            console.print(f"epoch {epoch} is over")
        else:
            assert to_deadline is not None
            job_id = _job_id(to_deadline)
            deadline = devnet_ops.job_deadline(protocol, job_id)
            before, now = devnet_ops.advance(protocol.client, to=deadline + 1)
            console.print(f"job {job_hex(job_id)}: its deadline {_when(deadline)} has passed", soft_wrap=True)
        console.print(
            f"chain time {_when(now)}, {now - before:+,} s; epoch {int(escrow.currentEpoch().call())}",
            soft_wrap=True,
        )
        _refresh_price(protocol)


def _job_id(text: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        value = -1
    if not text.startswith("0x") or not 0 < value < 2**256:
        raise ConfigError(f"{text!r} is not a job id (0x and 64 hex digits)")
    return value


@devnet_app.command("price")
def price(
    usd_per_cmp: Annotated[str, typer.Argument(metavar="USD", help="Dollars per CMP, e.g. 1.25.")],
    confidence: Annotated[str, typer.Option(help="Half-width of the uncertainty band, in dollars.")] = "0",
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Set the oracle's price, pushed by its feeder in steps the oracle accepts (10 % each by default; a
    running `bme stack up` keeps pushing this price)."""
    value, band = parse_amount(usd_per_cmp, 18, "USD"), parse_amount(confidence, 18, "USD")
    if value == 0:
        raise ConfigError("the price must be above 0")
    with chain_errors(rpc_url):
        protocol = _devnet(rpc_url, deployment)
        feeder = devnet_ops.find_feeder(protocol)
        pushed, at = devnet_ops.push_price(protocol, feeder, value, band)
    console.print(
        f"oracle price {usd(pushed, 18)} per CMP (confidence ±{usd(band, 18)}) at {_when(at)}, "
        f"pushed by the feeder {feeder.address}",
        soft_wrap=True,
    )

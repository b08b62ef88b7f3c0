"""`bme wallet new|import|list|balance`: the user's encrypted keystores, and what they hold.

A private key is never written in the clear and never read from the command line: `new` draws it and
`import` reads it from a hidden prompt, or from standard input when that is not a terminal
(`bme wallet import NAME < key.txt`, or a secrets manager's pipe). Passwords come from `BME_PASSWORD` or a
hidden prompt, typed twice when a keystore is created.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from web3 import Web3

from bme.chain.pricing import read_market
from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    open_protocol,
)
from bme.display import cmp, crd, duration, eth, usd
from bme.errors import ChainError, ConfigError
from bme.user.wallets import (
    DEFAULT_WALLET_DIR,
    WalletDirOpt,
    account_from_secret,
    list_wallets,
    resolve_wallet,
    wallet_dir,
    wallet_path,
)
from bme.wallet.keystore import KeystoreError, create_keystore, read_password

wallet_app = typer.Typer(
    help="Wallets: encrypted keystores to pay for jobs with, and their balances.", no_args_is_help=True
)

console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def _new_keystore(name: str, directory: Path, private_key: bytes | None) -> None:
    """Encrypts `private_key` (a new one when None) as wallet `name`; a prompted password is typed twice.
    The wallet directory, when it is created, is its owner's only."""
    path = wallet_path(name, directory)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = read_password(confirm=True, prompt=f"password for wallet {name}")
    address = create_keystore(path, password, private_key)
    console.print(f"wallet {name}: {address}", soft_wrap=True)
    console.print(f"  keystore {path}", soft_wrap=True)


def _refuse_existing(name: str, directory: Path) -> None:
    """Fails before any secret is asked for when the wallet exists already."""
    path = wallet_path(name, directory)
    if path.exists():
        raise KeystoreError(f"{path} exists already: refusing to overwrite a keystore")


@wallet_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="The wallet's name: its keystore is NAME.json.")],
    wallet_dir_: WalletDirOpt = DEFAULT_WALLET_DIR,
) -> None:
    """Create a wallet: a new random key, encrypted with a password."""
    _refuse_existing(name, wallet_dir_)
    _new_keystore(name, wallet_dir_, None)


def _read_secret() -> str:
    """The private key or mnemonic: a hidden prompt on a terminal, else all of standard input."""
    if sys.stdin is not None and sys.stdin.isatty():
        secret: str = typer.prompt("private key (hex) or mnemonic", hide_input=True)
        return secret
    if sys.stdin is None:
        raise ConfigError("no standard input to read the private key from")
    return sys.stdin.read()


@wallet_app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="The wallet's name: its keystore is NAME.json.")],
    index: Annotated[
        int, typer.Option(help="For a mnemonic: the account index on the path m/44'/60'/0'/0/INDEX.")
    ] = 0,
    wallet_dir_: WalletDirOpt = DEFAULT_WALLET_DIR,
) -> None:
    """Import a private key or a BIP-39 mnemonic, from a hidden prompt or standard input (never arguments)."""
    _refuse_existing(name, wallet_dir_)
    account = account_from_secret(_read_secret(), index)
    for entry in list_wallets(wallet_dir_):
        if entry.address == account.address:
            err_console.print(f"note: wallet {entry.name} holds the same account", soft_wrap=True)
    _new_keystore(name, wallet_dir_, bytes(account.key))


@wallet_app.command("list")
def list_(wallet_dir_: WalletDirOpt = DEFAULT_WALLET_DIR) -> None:
    """List the wallets: names and addresses (no password needed)."""
    entries = list_wallets(wallet_dir_)
    if not entries:
        console.print(
            f"no wallets in {wallet_dir(wallet_dir_)} (create one with `bme wallet new NAME`)", soft_wrap=True
        )
        return
    width = max(len(e.name) for e in entries)
    for e in entries:
        console.print(f"{e.name:<{width}}  {e.address or f'unreadable: {e.problem}'}", soft_wrap=True)


@wallet_app.command("balance")
def balance(
    wallet: Annotated[str, typer.Argument(help="A wallet's name, a keystore's path, or an address.")],
    wallet_dir_: WalletDirOpt = DEFAULT_WALLET_DIR,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Show CMP, CRD and ETH (gas) balances, and the CMP's value at the oracle price (no password needed)."""
    address: str
    if Web3.is_address(wallet):
        address, label = Web3.to_checksum_address(wallet), ""
    else:
        w = resolve_wallet(wallet, wallet_dir_)
        address, label = w.address, f" (wallet {w.label})"
    with chain_errors(rpc_url):
        p = open_protocol(rpc_url, deployment)
        tokens = int(p.token.functions.balanceOf(address).call())
        credits = int(p.credit.functions.balanceOf(address).call())
        wei = int(p.client.w3.eth.get_balance(Web3.to_checksum_address(address)))
        try:
            market = read_market(p)
        except ChainError as exc:
            value = f"value unknown: {exc}"
        else:
            value = (
                f"= {usd(tokens * market.price // 10**30, 6)} at {usd(market.price, 18)} per CMP "
                f"(oracle price, {duration(market.price_age)} old)"
            )
            if not market.fresh:
                value += f"; stale: burns wait for a price under {duration(market.max_age)} old"
    console.print(f"{address}{label}", soft_wrap=True)
    console.print(f"  CMP {cmp(tokens)} {value}", soft_wrap=True)
    console.print(f"  CRD {crd(credits)}", soft_wrap=True)
    console.print(f"  ETH {eth(wei)} (for gas)", soft_wrap=True)

"""`bme operator register|update|unbond|withdraw|claim|redeem|status`: an operator's life on the chain.

The commands join `operator_app` of `bme.cli.operator_node` (beside `serve`). Each signs with a wallet,
named as the user commands name one (`--wallet NAME` in the wallet directory, or a keystore's path) or given
as `--keystore FILE`, prints the transaction, its gas and the state that results; failures (a wrong password,
too little stake or ETH for gas, nothing to claim, an unreachable RPC, a revert) raise `BmeError` subclasses,
which `bme` prints as one line, exit code 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD

from bme.chain.client import ChainClient, Sent
from bme.chain.deploy import Protocol
from bme.chain.failures import GasFundsTooLow
from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    load_deployment,
    open_protocol,
    parse_amount,
)
from bme.cli.operator_node import operator_app
from bme.display import cmp, crd, eth, when
from bme.errors import ConfigError
from bme.user.wallets import Wallet, choose_wallet

CMP, CRD = 10**18, 10**6
MAX_UINT = 2**256 - 1
STATUS_NAMES = ("not registered", "bonded", "unbonding")

console = Console(highlight=False)

KEYSTORE_ENV, WALLET_ENV = "BME_KEYSTORE", "BME_WALLET"
KeystoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--keystore", "-k", envvar=KEYSTORE_ENV, help="The operator's keystore file [BME_KEYSTORE]."
    ),
]
WalletOpt = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        "-w",
        envvar=WALLET_ENV,
        help="The operator's wallet: a name in the wallet directory or a keystore's path [BME_WALLET]; "
        "default: the wallet named 'default'.",
    ),
]


@dataclass
class Session:
    """A connected client, the protocol, and the operator's address (and account, once unlocked)."""

    client: ChainClient
    protocol: Protocol
    wallet: Wallet
    address: str
    account: LocalAccount | None = None

    def send(self, call: ContractFunction, what: str) -> Sent:
        assert self.account is not None
        try:
            sent = self.client.send(self.account, call)
        except GasFundsTooLow as exc:
            raise (exc.for_wallet(self.wallet.name) if self.wallet.name else exc) from None
        console.print(f"{what}: transaction {sent.tx_hash}, gas used {sent.gas_used:,}", soft_wrap=True)
        return sent


def _connect(wallet: Wallet, rpc_url: str, deployment: Path, unlock: bool) -> Session:
    address = wallet.address
    d = load_deployment(deployment)
    if not d.registry or not d.emissions:
        raise ConfigError(f"{deployment} predates the operator registry: redeploy the protocol")
    account = wallet.unlock() if unlock else None
    protocol = open_protocol(rpc_url, deployment, d)
    return Session(protocol.client, protocol, wallet, address, account)


def _show_state(s: Session) -> None:
    """The operator's state after a command: registry, rewards and balances."""
    p, a = s.protocol, s.address
    reg, em = p.registry.functions, p.emissions.functions
    stake, _first, unbonding_ends, status, jailed, known = reg.operatorOf(a).call()
    lines = [f"operator {a}: {STATUS_NAMES[status]}" + (", jailed" if jailed else "")]
    if status != 0:
        active = reg.isActive(a).call()
        lines.append(f"  stake {cmp(stake)} ({'active' if active else 'not dispatched to'})")
        lines.append(f"  endpoint {reg.endpointOf(a).call()}, models {list(reg.modelsOf(a).call())}")
    if status == 2:
        lines.append(f"  unbonding ends {when(unbonding_ends, s.client.timestamp())}")
    current = em.currentEpoch().call()
    _next, claimed = em.claimerOf(a).call()
    lines.append(f"  epoch {current}; rewards claimed {cmp(claimed)}")
    if known:
        start, end, pending = em.pendingRewards(a).call()
        if pending:
            lines.append(f"  rewards to claim {cmp(pending)} (epochs {start} to {end})")
        else:
            lines.append(f"  nothing to claim (next claim from epoch {start})")
    lines.append(f"  job earnings {crd(p.escrow.functions.earningsOf(a).call())}")
    balance, gas = p.token.functions.balanceOf(a).call(), s.client.w3.eth.get_balance(cast(Any, a))
    lines.append(f"  balance {cmp(balance)}, {eth(gas)} for gas")
    console.print("\n".join(lines), soft_wrap=True)


@contextmanager
def session(
    wallet: str | None,
    keystore: Path | None,
    rpc_url: str,
    deployment: Path,
    *,
    unlock: bool = True,
) -> Iterator[Session]:
    """The operator's session for one command: its wallet (`--wallet` or `--keystore`), unlocked unless
    the command only reads; its state is shown once the command succeeded."""
    chosen = _signer(wallet, keystore)
    with chain_errors(rpc_url):
        s = _connect(chosen, rpc_url, deployment, unlock)
        yield s
        _show_state(s)


def _signer(wallet: str | None, keystore: Path | None) -> Wallet:
    """The wallet of `--wallet` or `--keystore`. When both are set and one of them only by its environment
    variable (`BME_KEYSTORE` may be exported for `bme relayer run`), the one on the command line wins."""
    if wallet is not None and keystore is not None:
        wallet_from_env = os.environ.get(WALLET_ENV) == wallet
        keystore_from_env = bool(os.environ.get(KEYSTORE_ENV)) and Path(os.environ[KEYSTORE_ENV]) == keystore
        if keystore_from_env and not wallet_from_env:
            keystore = None
        elif wallet_from_env and not keystore_from_env:
            wallet = None
    return choose_wallet(wallet, keystore)


def _models(models: list[int]) -> list[int]:
    for m in models:
        if not 0 <= m < 2**16:
            raise ConfigError(f"model id {m} is out of range (0 to 65535)")
    return models


@operator_app.command("register")
def register(
    stake: Annotated[str, typer.Option(help="CMP to stake, e.g. 1000.")],
    endpoint: Annotated[str, typer.Option(help="URL the relayer sends jobs to.")],
    model: Annotated[list[int], typer.Option(help="A model id served; repeat for several.")],
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Register as an operator: approve the registry for the stake if needed, then stake and list."""
    amount = parse_amount(stake, 18, "CMP")
    with session(wallet, keystore, rpc_url, deployment) as s:
        p = s.protocol
        # The contract's checks, in its order, before an approval is spent on a registration that would fail.
        if p.registry.functions.operatorOf(s.address).call()[3] != 0:
            raise ConfigError(f"operator {s.address} is already registered")
        minimum = p.registry.functions.minStake().call()
        if amount < minimum:
            raise ConfigError(f"a stake of {cmp(amount)} is below the minimum of {cmp(minimum)}")
        balance = p.token.functions.balanceOf(s.address).call()
        if balance < amount:
            raise ConfigError(f"{s.address} holds {cmp(balance)}, fewer than the stake of {cmp(amount)}")
        if p.token.functions.allowance(s.address, p.registry.address).call() < amount:
            s.send(p.token.functions.approve(p.registry.address, amount), "approve")
        s.send(p.registry.functions.register(amount, endpoint, _models(model)), "register")


@operator_app.command("update")
def update(
    endpoint: Annotated[str, typer.Option(help="URL the relayer sends jobs to.")],
    model: Annotated[list[int], typer.Option(help="A model id served; repeat for several.")],
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Change the endpoint and the models served."""
    with session(wallet, keystore, rpc_url, deployment) as s:
        s.send(s.protocol.registry.functions.update(endpoint, _models(model)), "update")


@operator_app.command("unbond")
def unbond(
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Ask to leave: no more jobs; the stake may be withdrawn after the unbonding delay."""
    with session(wallet, keystore, rpc_url, deployment) as s:
        s.send(s.protocol.registry.functions.requestUnbonding(), "unbond")


@operator_app.command("withdraw")
def withdraw(
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Take the stake back once the unbonding delay is over."""
    with session(wallet, keystore, rpc_url, deployment) as s:
        s.send(s.protocol.registry.functions.withdraw(), "withdraw")


@operator_app.command("claim")
def claim(
    through: Annotated[
        int | None, typer.Option(help="Claim only up to this epoch (default: every finished epoch).")
    ] = None,
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Claim the emission rewards of every unclaimed epoch past the challenge window."""
    with session(wallet, keystore, rpc_url, deployment) as s:
        em = s.protocol.emissions.functions
        sent = s.send(em.claim() if through is None else em.claimThrough(through), "claim")
        # The receipt holds the CMP transfer's log too: decode only this event's logs, quietly.
        for log in s.protocol.emissions.events.RewardsClaimed().process_receipt(sent.receipt, errors=DISCARD):
            args: Any = log["args"]
            console.print(
                f"claimed {cmp(args['tokens'])} for epochs {args['fromEpoch']} to {args['toEpoch']}",
                soft_wrap=True,
            )


@operator_app.command("redeem")
def redeem(
    credits: Annotated[str | None, typer.Option(help="CRD of earnings to redeem (default: all).")] = None,
    min_cmp: Annotated[str, typer.Option(help="The fewest CMP accepted (slippage bound).")] = "0",
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Redeem job earnings (CRD) for CMP at the oracle price through the BME core."""
    min_tokens = parse_amount(min_cmp, 18, "CMP")
    with session(wallet, keystore, rpc_url, deployment) as s:
        p = s.protocol
        earned = p.escrow.functions.earningsOf(s.address).call()
        amount = earned if credits is None else parse_amount(credits, 6, "CRD")
        if amount == 0:
            raise ConfigError(f"nothing to redeem: {s.address} has no job earnings")
        sent = s.send(p.bme.functions.redeem(amount, min_tokens), "redeem")
        for log in p.bme.events.Redeemed().process_receipt(sent.receipt, errors=DISCARD):
            args: Any = log["args"]
            console.print(f"redeemed {crd(args['credits'])} for {cmp(args['tokensMinted'])}", soft_wrap=True)


@operator_app.command("status")
def status(
    wallet: WalletOpt = None,
    keystore: KeystoreOpt = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Show the operator's registration, stake, rewards and earnings (no password needed)."""
    with session(wallet, keystore, rpc_url, deployment, unlock=False):
        pass

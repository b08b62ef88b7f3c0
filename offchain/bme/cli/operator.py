"""`bme operator register|update|unbond|withdraw|claim|redeem|status`: an operator's life on the chain.

The commands join the node's `operator_app` (beside `serve`). Each signs with a keystore account, prints the
transaction, its gas and the state that results; failures (a wrong password, too little stake, nothing to
claim, an unreachable RPC, a revert) raise `BmeError` subclasses, which `bme` prints as one line, exit code 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3.contract.contract import ContractFunction

from bme.chain.client import ChainClient, Sent
from bme.chain.deploy import Deployment, Protocol
from bme.errors import BmeError, ChainError, ConfigError
from bme.node.cli import operator_app
from bme.wallet.keystore import PASSWORD_ENV, keystore_address, load_account

CMP, CRD = 10**18, 10**6
MAX_UINT = 2**256 - 1
STATUS_NAMES = ("not registered", "bonded", "unbonding")

console = Console()

KeystoreOpt = Annotated[
    Path,
    typer.Option("--keystore", "-k", envvar="BME_KEYSTORE", help="The operator's keystore [BME_KEYSTORE]."),
]
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
    return f"{Decimal(amount) / 10**decimals:,.{min(decimals, 6)}f} {unit}"


@contextmanager
def chain_errors(rpc_url: str) -> Iterator[None]:
    """Transport failures in the middle of a command become one `ChainError`."""
    try:
        yield
    except BmeError:
        raise
    except (OSError, ConnectionError) as exc:
        raise ChainError(f"lost the connection to {rpc_url}: {exc}") from None
    except Exception as exc:
        import requests

        if isinstance(exc, requests.RequestException):
            raise ChainError(f"lost the connection to {rpc_url}: {exc}") from None
        raise


@dataclass
class Session:
    """A connected client, the protocol, and the operator's address (and account, once unlocked)."""

    client: ChainClient
    protocol: Protocol
    address: str
    account: LocalAccount | None = None

    def send(self, call: ContractFunction, what: str) -> Sent:
        assert self.account is not None
        sent = self.client.send(self.account, call)
        console.print(f"{what}: transaction {sent.tx_hash}, gas used {sent.gas_used:,}", soft_wrap=True)
        return sent


def _password() -> str:
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = typer.prompt("keystore password", hide_input=True)
    return password


def _connect(keystore: Path, rpc_url: str, deployment: Path, unlock: bool) -> Session:
    address = keystore_address(keystore)
    if not deployment.exists():
        raise ConfigError(f"no deployment file at {deployment} (pass --deployment or set BME_DEPLOYMENT)")
    try:
        d = Deployment.load(deployment)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{deployment} is not a deployment file: {exc}") from None
    if not d.registry or not d.emissions:
        raise ConfigError(f"{deployment} predates the operator registry: redeploy the protocol")
    account = load_account(keystore, _password()) if unlock else None
    client = ChainClient.connect(rpc_url)
    if client.chain_id != d.chain_id:
        raise ConfigError(f"{rpc_url} is chain {client.chain_id}, but {deployment} is for chain {d.chain_id}")
    return Session(client, Protocol.at(client, d), address, account)


def _show_state(s: Session) -> None:
    """The operator's state after a command: registry, rewards and balances."""
    p, a = s.protocol, s.address
    reg, em = p.registry.functions, p.emissions.functions
    stake, _first, unbonding_ends, status, jailed, known = reg.operatorOf(a).call()
    lines = [f"operator {a}: {STATUS_NAMES[status]}" + (", jailed" if jailed else "")]
    if status != 0:
        active = reg.isActive(a).call()
        lines.append(f"  stake {fmt(stake, 18, 'CMP')} ({'active' if active else 'not dispatched to'})")
        lines.append(f"  endpoint {reg.endpointOf(a).call()}, models {list(reg.modelsOf(a).call())}")
    if status == 2:
        lines.append(f"  unbonding ends at {unbonding_ends} (chain time {s.client.timestamp()})")
    current = em.currentEpoch().call()
    _next, claimed = em.claimerOf(a).call()
    lines.append(f"  epoch {current}; rewards claimed {fmt(claimed, 18, 'CMP')}")
    if known:
        start, end, pending = em.pendingRewards(a).call()
        if pending:
            lines.append(f"  rewards to claim {fmt(pending, 18, 'CMP')} (epochs {start} to {end})")
        else:
            lines.append(f"  nothing to claim (next claim from epoch {start})")
    lines.append(f"  job earnings {fmt(p.escrow.functions.earningsOf(a).call(), 6, 'CRD')}")
    lines.append(f"  balance {fmt(p.token.functions.balanceOf(a).call(), 18, 'CMP')}")
    console.print("\n".join(lines), soft_wrap=True)


@contextmanager
def session(keystore: Path, rpc_url: str, deployment: Path, *, unlock: bool = True) -> Iterator[Session]:
    with chain_errors(rpc_url):
        s = _connect(keystore, rpc_url, deployment, unlock)
        yield s
        _show_state(s)


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
    keystore: KeystoreOpt,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Register as an operator: approve the registry for the stake if needed, then stake and list."""
    amount = parse_amount(stake, 18, "CMP")
    with session(keystore, rpc_url, deployment) as s:
        p = s.protocol
        # The contract's checks, in its order, before an approval is spent on a registration that would fail.
        if p.registry.functions.operatorOf(s.address).call()[3] != 0:
            raise ConfigError(f"operator {s.address} is already registered")
        minimum = p.registry.functions.minStake().call()
        if amount < minimum:
            raise ConfigError(
                f"a stake of {fmt(amount, 18, 'CMP')} is below the minimum of {fmt(minimum, 18, 'CMP')}"
            )
        balance = p.token.functions.balanceOf(s.address).call()
        if balance < amount:
            raise ConfigError(f"{s.address} holds {fmt(balance, 18, 'CMP')}, less than the stake")
        if p.token.functions.allowance(s.address, p.registry.address).call() < amount:
            s.send(p.token.functions.approve(p.registry.address, amount), "approve")
        s.send(p.registry.functions.register(amount, endpoint, _models(model)), "register")


@operator_app.command("update")
def update(
    endpoint: Annotated[str, typer.Option(help="URL the relayer sends jobs to.")],
    model: Annotated[list[int], typer.Option(help="A model id served; repeat for several.")],
    keystore: KeystoreOpt,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Change the endpoint and the models served."""
    with session(keystore, rpc_url, deployment) as s:
        s.send(s.protocol.registry.functions.update(endpoint, _models(model)), "update")


@operator_app.command("unbond")
def unbond(
    keystore: KeystoreOpt, rpc_url: RpcOpt = DEFAULT_RPC, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT
) -> None:
    """Ask to leave: no more jobs; the stake may be withdrawn after the unbonding delay."""
    with session(keystore, rpc_url, deployment) as s:
        s.send(s.protocol.registry.functions.requestUnbonding(), "unbond")


@operator_app.command("withdraw")
def withdraw(
    keystore: KeystoreOpt, rpc_url: RpcOpt = DEFAULT_RPC, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT
) -> None:
    """Take the stake back once the unbonding delay is over."""
    with session(keystore, rpc_url, deployment) as s:
        s.send(s.protocol.registry.functions.withdraw(), "withdraw")


@operator_app.command("claim")
def claim(
    keystore: KeystoreOpt,
    through: Annotated[
        int | None, typer.Option(help="Claim only up to this epoch (default: every finished epoch).")
    ] = None,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Claim the emission rewards of every unclaimed finished epoch."""
    with session(keystore, rpc_url, deployment) as s:
        em = s.protocol.emissions.functions
        sent = s.send(em.claim() if through is None else em.claimThrough(through), "claim")
        for log in s.protocol.emissions.events.RewardsClaimed().process_receipt(sent.receipt):
            args: Any = log["args"]
            tokens = fmt(args["tokens"], 18, "CMP")
            console.print(f"claimed {tokens} for epochs {args['fromEpoch']} to {args['toEpoch']}")


@operator_app.command("redeem")
def redeem(
    keystore: KeystoreOpt,
    credits: Annotated[str | None, typer.Option(help="CRD of earnings to redeem (default: all).")] = None,
    min_cmp: Annotated[str, typer.Option(help="The fewest CMP accepted (slippage bound).")] = "0",
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Redeem job earnings (CRD) for CMP at the oracle price through the BME core."""
    min_tokens = parse_amount(min_cmp, 18, "CMP")
    with session(keystore, rpc_url, deployment) as s:
        p = s.protocol
        earned = p.escrow.functions.earningsOf(s.address).call()
        amount = earned if credits is None else parse_amount(credits, 6, "CRD")
        if amount == 0:
            raise ConfigError(f"nothing to redeem: {s.address} has no job earnings")
        sent = s.send(p.bme.functions.redeem(amount, min_tokens), "redeem")
        for log in p.bme.events.Redeemed().process_receipt(sent.receipt):
            args: Any = log["args"]
            console.print(
                f"redeemed {fmt(args['credits'], 6, 'CRD')} for {fmt(args['tokensMinted'], 18, 'CMP')}"
            )


@operator_app.command("status")
def status(
    keystore: KeystoreOpt, rpc_url: RpcOpt = DEFAULT_RPC, deployment: DeploymentOpt = DEFAULT_DEPLOYMENT
) -> None:
    """Show the operator's registration, stake, rewards and earnings (no password needed)."""
    with session(keystore, rpc_url, deployment, unlock=False):
        pass

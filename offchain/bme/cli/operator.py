"""`bme operator register|update|unbond|withdraw|claim|redeem|status`: an operator's life on the chain.

The commands join the node's `operator_app` (beside `serve`). Each signs with a keystore account, prints the
transaction, its gas and the state that results; failures (a wrong password, too little stake, nothing to
claim, an unreachable RPC, a revert) raise `BmeError` subclasses, which `bme` prints as one line, exit code 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console
from web3.contract.contract import ContractFunction

from bme.chain.client import ChainClient, Sent
from bme.chain.deploy import Protocol
from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    fmt,
    load_deployment,
    open_protocol,
    parse_amount,
    read_password,
)
from bme.errors import ConfigError
from bme.node.cli import operator_app
from bme.wallet.keystore import keystore_address, load_account

CMP, CRD = 10**18, 10**6
MAX_UINT = 2**256 - 1
STATUS_NAMES = ("not registered", "bonded", "unbonding")

console = Console()

KeystoreOpt = Annotated[
    Path,
    typer.Option("--keystore", "-k", envvar="BME_KEYSTORE", help="The operator's keystore [BME_KEYSTORE]."),
]


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


def _connect(keystore: Path, rpc_url: str, deployment: Path, unlock: bool) -> Session:
    address = keystore_address(keystore)
    d = load_deployment(deployment)
    if not d.registry or not d.emissions:
        raise ConfigError(f"{deployment} predates the operator registry: redeploy the protocol")
    account = load_account(keystore, read_password()) if unlock else None
    protocol = open_protocol(rpc_url, deployment, d)
    return Session(protocol.client, protocol, address, account)


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

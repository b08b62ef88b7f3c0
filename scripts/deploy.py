"""Ape script: deploy the protocol on a network, name who holds each role, write its addresses.

    ape run deploy --network http://127.0.0.1:8545 --relayer 0xRELAYER --feeder 0xFEEDER
    ape run deploy --network ethereum:sepolia:node --keystore deployer.json --relayer 0x… --feeder 0x… \
        --proposer 0x… --guardian 0x…

`--network` takes an Ape network choice or a node's URL (a running devnet). `ethereum:local:foundry` makes Ape
start a throwaway anvil that stops with the script: a dry run, not a protocol to use (`bme stack up` is that).

Everything that needs governance is done here, while the deployer still governs: the relayers allowed to
settle (`--relayer`, the escrow's RELAYER_ROLE), the oracle's feeders (`--feeder`), the timelock's
proposers, executors and cancellers (`--proposer`, `--executor`, `--canceller`), the guardian that may pause
(`--guardian`), the registry's slasher (`--slasher`, default the timelock), the CMP minted at genesis
(`--mint ADDRESS=CMP`). On a chain that is not a local devnet, `--feeder`, `--proposer` and `--guardian` are
required and must be distinct accounts, none of them the deployer; on a devnet (chain id 31337 or 1337) an
unnamed role goes to the deployer (which, as the feeder, pushes the first price) and 1,000,000 CMP also go
to the devnet faucet (account 9) for `bme devnet fund`. Then every admin role passes to the timelock and the
deployer renounces every role it was not named for: later changes are timelock proposals, delayed by
`--timelock-delay`.

The deployer: `--keystore FILE` (password from BME_PASSWORD or a prompt), else the key in BME_DEPLOYER_KEY,
else, on a devnet only, devnet account 0.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from bme import devnet_ops
from bme.chain.client import ChainClient
from bme.chain.deploy import DeployConfig, check_roles, deploy_protocol
from bme.chain.devnet import devnet_keys
from bme.cli.common import parse_amount
from bme.economics.oracle import DEFAULT_MAX_AGE, DEFAULT_MAX_STEP_BPS, DEFAULT_STEP_PERIOD
from bme.errors import ConfigError
from bme.wallet.keystore import PASSWORD_ENV, load_account

CMP = 10**18


def _deployer(keystore: Path | None, devnet: bool) -> LocalAccount:
    if keystore is not None:
        password = os.environ.get(PASSWORD_ENV) or click.prompt("keystore password", hide_input=True)
        return load_account(keystore, password)
    key = os.environ.get("BME_DEPLOYER_KEY")
    if key:
        account: LocalAccount = Account.from_key(key)
        return account
    if devnet:
        account = Account.from_key(devnet_keys(1)[0])
        return account
    raise click.UsageError("no deployer on this network: pass --keystore FILE or set BME_DEPLOYER_KEY")


def _mints(items: tuple[str, ...]) -> dict[str, int]:
    """`--mint ADDRESS=CMP` options as base units per checksummed address."""
    out: dict[str, int] = {}
    for item in items:
        address, _, amount = item.partition("=")
        if not Web3.is_address(address) or not amount:
            raise click.BadParameter(f"{item!r}: expected ADDRESS=CMP", param_hint="--mint")
        try:
            tokens = parse_amount(amount, 18, "CMP")
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--mint") from None
        holder = Web3.to_checksum_address(address)
        out[holder] = out.get(holder, 0) + tokens
    return out


@click.command(cls=ConnectedProviderCommand)
@click.option("--out", type=click.Path(path_type=Path), default=Path("deployment.json"), show_default=True)
@click.option("--relayer", "relayers", multiple=True, metavar="ADDRESS", help="May settle jobs; repeat.")
@click.option("--feeder", "feeders", multiple=True, metavar="ADDRESS", help="May push oracle prices; repeat.")
@click.option(
    "--proposer", "proposers", multiple=True, metavar="ADDRESS", help="Proposes timelock operations."
)
@click.option(
    "--executor", "executors", multiple=True, metavar="ADDRESS", help="Executes them [the proposers]."
)
@click.option(
    "--canceller", "cancellers", multiple=True, metavar="ADDRESS", help="Cancels them, as proposers do."
)
@click.option("--guardian", default="", metavar="ADDRESS", help="May pause the BME core and the escrow.")
@click.option("--slasher", default="", metavar="ADDRESS", help="May slash operators [the timelock].")
@click.option("--oracle-max-age", type=int, default=DEFAULT_MAX_AGE, show_default=True, help="Seconds.")
@click.option(
    "--oracle-max-step-bps",
    type=int,
    default=DEFAULT_MAX_STEP_BPS,
    show_default=True,
    help="The most one price push may move the price.",
)
@click.option(
    "--oracle-step-period",
    type=int,
    default=DEFAULT_STEP_PERIOD,
    show_default=True,
    help="Seconds a full price step needs: a rate bound (0: none).",
)
@click.option("--mint", "mints", multiple=True, metavar="ADDRESS=CMP", help="Genesis CMP; repeat.")
@click.option("--epoch-length", type=int, default=24 * 3600, show_default=True, help="Seconds per epoch.")
@click.option("--timelock-delay", type=int, default=2 * 24 * 3600, show_default=True)
@click.option("--devnet-faucet/--no-devnet-faucet", default=True, help="On a devnet: mint the faucet's CMP.")
@click.option("--keystore", type=click.Path(path_type=Path, exists=True), default=None, help="The deployer.")
def cli(
    provider: object,
    out: Path,
    relayers: tuple[str, ...],
    feeders: tuple[str, ...],
    proposers: tuple[str, ...],
    executors: tuple[str, ...],
    cancellers: tuple[str, ...],
    guardian: str,
    slasher: str,
    oracle_max_age: int,
    oracle_max_step_bps: int,
    oracle_step_period: int,
    mints: tuple[str, ...],
    epoch_length: int,
    timelock_delay: int,
    devnet_faucet: bool,
    keystore: Path | None,
) -> None:
    client = ChainClient(provider.web3)  # type: ignore[attr-defined]
    devnet = client.chain_id in devnet_ops.DEVNET_CHAIN_IDS
    deployer = _deployer(keystore, devnet)
    genesis = _mints(mints)
    if devnet and devnet_faucet:
        faucet = devnet_ops.faucet_account().address
        genesis[faucet] = genesis.get(faucet, 0) + devnet_ops.FAUCET_CMP
    config = DeployConfig(
        timelock_delay=timelock_delay,
        epoch_length=epoch_length,
        relayers=list(relayers),
        feeders=list(feeders),
        proposers=list(proposers),
        executors=list(executors),
        cancellers=list(cancellers),
        guardian=guardian,
        slasher=slasher,
        oracle_max_age=oracle_max_age,
        oracle_max_step_bps=oracle_max_step_bps,
        oracle_step_period=oracle_step_period,
        genesis=genesis,
    )
    try:
        check_roles(config, deployer.address, client.chain_id)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    protocol = deploy_protocol(client, deployer, config)
    protocol.deployment.save(out)
    d = protocol.deployment
    click.echo(f"deployed on chain {d.chain_id} by {deployer.address}; addresses written to {out}")
    click.echo(f"  relayers allowed to settle: {', '.join(relayers) or 'none'}")
    click.echo(
        f"  oracle feeders: {', '.join(feeders) or deployer.address}"
        + ("" if feeders else " (first price pushed)")
    )
    click.echo(
        f"  proposers: {', '.join(proposers) or deployer.address}; guardian: {guardian or deployer.address}"
    )
    for holder, amount in genesis.items():
        click.echo(f"  minted {amount / CMP:,.6f} CMP to {holder}")
    click.echo(f"  governance: the timelock {d.timelock} (delay {timelock_delay} s)")

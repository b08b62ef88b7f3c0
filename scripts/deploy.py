"""Ape script: deploy the protocol on the connected network and write its addresses.

    ape run deploy --network ethereum:local:foundry

The deployer is Ape's first test account on local networks; on a real network pass BME_DEPLOYER_KEY.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from ape import accounts, chain
from eth_account import Account

from bme.chain.client import ChainClient
from bme.chain.deploy import DeployConfig, deploy_protocol


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("deployment.json"), show_default=True)
@click.option("--timelock-delay", type=int, default=2 * 24 * 3600, show_default=True)
def cli(out: Path, timelock_delay: int) -> None:
    key = os.environ.get("BME_DEPLOYER_KEY") or accounts.test_accounts[0].private_key
    deployer = Account.from_key(key)
    protocol = deploy_protocol(
        ChainClient(chain.provider.web3), deployer, DeployConfig(timelock_delay=timelock_delay)
    )
    protocol.deployment.save(out)
    click.echo(f"deployed; addresses written to {out}")

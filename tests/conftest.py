"""Shared fixtures: the whole protocol deployed once per module on the selected Ape network.

Deployment goes through `bme.chain.deploy.deploy_protocol`, the same code the CLI and the demo use; the
contracts are then handed to the tests as Ape contract instances. Ape's isolation reverts each test's changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, deploy_protocol

CMP = 10**18
CRD = 10**6
MAX_UINT = 2**256 - 1
GENESIS = 1_000_000 * CMP


@dataclass
class Deployed:
    """The protocol as Ape contracts, with the accounts that play each part."""

    timelock: Any
    oracle: Any
    token: Any
    credit: Any
    bme: Any
    escrow: Any
    registry: Any
    emissions: Any
    deployer: Any
    governor_proposer: Any
    relayer: Any
    users: list[Any]
    operators: list[Any]
    window_start: int
    slasher: Any


def local_account(ape_account: Any) -> LocalAccount:
    return Account.from_key(ape_account.private_key)


@pytest.fixture(scope="module")
def protocol(accounts: Any, project: Any, chain: Any) -> Deployed:
    deployer, relayer = accounts[0], accounts[1]
    users, operators = list(accounts[2:6]), list(accounts[6:9])
    client = ChainClient(chain.provider.web3)
    deployed = deploy_protocol(
        client,
        local_account(deployer),
        DeployConfig(
            timelock_delay=3600,
            genesis={u.address: GENESIS for u in users},
            relayers=[relayer.address],
            slasher=deployer.address,
            # The core's tests push arbitrary prices, as a Chainlink feed may answer any: the manual
            # oracle's step bound (10 % by default) is tested on oracles of its own (test_oracles.py).
            oracle_max_step_bps=0,
        ),
    )
    d = deployed.deployment
    bme = project.BurnMintEquilibrium.at(d.bme)
    for u in users:
        project.ComputeToken.at(d.token).approve(bme.address, MAX_UINT, sender=u)
    return Deployed(
        timelock=project.BmeTimelock.at(d.timelock),
        oracle=project.ManualPriceOracle.at(d.oracle),
        token=project.ComputeToken.at(d.token),
        credit=project.ComputeCredit.at(d.credit),
        bme=bme,
        escrow=project.JobEscrow.at(d.escrow),
        registry=project.OperatorRegistry.at(d.registry),
        emissions=project.EmissionSchedule.at(d.emissions),
        deployer=deployer,
        governor_proposer=deployer,
        relayer=relayer,
        users=users,
        operators=operators,
        window_start=d.deployed_at,
        slasher=deployer,
    )


def push_price(p: Deployed, chain: Any, price: int, confidence: int = 0) -> int:
    """Mines a block one second after the head and pushes `price` observed at its time; returns that time.

    (anvil gives blocks mined in the same wall-clock second the same time: a plain mine could repeat the
    previous push's time, which the oracle refuses.)"""
    ts = int(chain.blocks.head.timestamp) + 1
    chain.mine(timestamp=ts)
    p.oracle.pushPrice(price, confidence, ts, sender=p.deployer)
    return ts


@pytest.fixture
def fresh_price(protocol: Deployed, chain: Any) -> int:
    """A fresh $1.00 price, so calls that need the oracle pass its staleness check."""
    return push_price(protocol, chain, CMP)


@pytest.fixture
def model_id() -> int:
    return SMOLLM2.model_id

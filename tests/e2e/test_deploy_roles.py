"""Who holds what after a deployment on a chain that is not a local devnet (anvil with another chain id): a
deployment that leaves one key in charge of prices, governance and the pause is refused before any
transaction, by `deploy_protocol` and by `ape run deploy`; one with distinct roles succeeds and leaves the
deployer without any role on any contract, so that its key, once stolen, can do nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from bme.chain.artifacts import project_root
from bme.chain.client import ChainClient
from bme.chain.deploy import DEFAULT_ADMIN_ROLE, DeployConfig, Deployment, Protocol, deploy_protocol, role
from bme.chain.devnet import Anvil, devnet_keys
from bme.errors import ConfigError, ContractRevert

#: Not a local devnet's chain id.
CHAIN_ID = 4242


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with Anvil(chain_id=CHAIN_ID) as node:
        yield node


@pytest.fixture(scope="module")
def keys() -> list[LocalAccount]:
    """Deployer, feeder, proposer, guardian, executor, canceller, slasher, relayer: funded devnet accounts."""
    return [Account.from_key(k) for k in devnet_keys(8)]


def role_ids(contract: Contract) -> dict[str, bytes]:
    """Every role a contract defines: `DEFAULT_ADMIN_ROLE` and each `*_ROLE` constant of its ABI."""
    names = [
        f["name"]
        for f in contract.abi
        if f.get("type") == "function" and f["name"].endswith("_ROLE") and not f.get("inputs")
    ]
    return {name: bytes(getattr(contract.functions, name)().call()) for name in names}


def roles_of(p: Protocol, account: str) -> list[str]:
    """Every (contract, role) `account` holds, over every contract of the deployment."""
    held = []
    for name in ("timelock", "oracle", "token", "credit", "bme", "escrow", "registry", "emissions"):
        contract = getattr(p, name)
        if not any(f.get("name") == "hasRole" for f in contract.abi):
            continue
        for role_name, role_id in role_ids(contract).items():
            if contract.functions.hasRole(role_id, account).call():
                held.append(f"{name}.{role_name}")
    return held


def test_one_key_deployment_off_a_devnet_is_refused_before_any_transaction(
    anvil: Anvil, keys: list[LocalAccount]
) -> None:
    client = ChainClient.connect(anvil.url)
    deployer = keys[0]
    nonce = client.w3.eth.get_transaction_count(deployer.address)
    with pytest.raises(ConfigError) as refused:
        deploy_protocol(client, deployer, DeployConfig())
    message = str(refused.value)
    assert f"chain {CHAIN_ID}, which is not a local devnet" in message
    for missing in ("no feeder given", "no proposer given", "no guardian given"):
        assert missing in message
    # The deployer naming itself, or one account given two parts, is refused as well.
    with pytest.raises(ConfigError) as refused:
        deploy_protocol(
            client,
            deployer,
            DeployConfig(feeders=[deployer.address], proposers=[keys[2].address], guardian=keys[2].address),
        )
    message = str(refused.value)
    assert f"the deployer {deployer.address} is named feeder" in message
    assert f"{keys[2].address} is named guardian and proposer" in message
    with pytest.raises(ConfigError, match="unbounded"):
        deploy_protocol(
            client,
            deployer,
            DeployConfig(
                feeders=[keys[1].address],
                proposers=[keys[2].address],
                guardian=keys[3].address,
                oracle_max_step_bps=0,
            ),
        )
    # Nor may the deployer keep any other part off a devnet.
    with pytest.raises(ConfigError) as refused:
        deploy_protocol(
            client,
            deployer,
            DeployConfig(
                feeders=[keys[1].address],
                proposers=[keys[2].address],
                guardian=keys[3].address,
                executors=[deployer.address],
                relayers=[deployer.address],
            ),
        )
    message = str(refused.value)
    assert f"the deployer {deployer.address} is named executor" in message
    assert f"the deployer {deployer.address} is named relayer" in message
    assert client.w3.eth.get_transaction_count(deployer.address) == nonce  # nothing was sent


@pytest.fixture(scope="module")
def spread(anvil: Anvil, keys: list[LocalAccount]) -> Protocol:
    """A deployment off a devnet with every role named, each its own account."""
    deployer, feeder, proposer, guardian, executor, canceller, slasher, relayer = keys
    return deploy_protocol(
        ChainClient.connect(anvil.url),
        deployer,
        DeployConfig(
            timelock_delay=3600,
            genesis={deployer.address: 10**21},
            relayers=[relayer.address],
            feeders=[feeder.address],
            proposers=[proposer.address],
            executors=[executor.address],
            cancellers=[canceller.address],
            guardian=guardian.address,
            slasher=slasher.address,
        ),
    )


def test_distinct_roles_deploy_and_the_deployer_keeps_no_role(
    spread: Protocol, keys: list[LocalAccount]
) -> None:
    deployer, feeder, proposer, guardian, executor, canceller, slasher, relayer = (k.address for k in keys)
    p = spread
    assert p.deployment.chain_id == CHAIN_ID
    assert roles_of(p, deployer) == []
    gov = Web3.to_checksum_address(p.timelock.address)
    assert roles_of(p, feeder) == ["oracle.FEEDER_ROLE"]
    assert roles_of(p, proposer) == ["timelock.CANCELLER_ROLE", "timelock.PROPOSER_ROLE"]
    assert roles_of(p, executor) == ["timelock.EXECUTOR_ROLE"]
    assert roles_of(p, canceller) == ["timelock.CANCELLER_ROLE"]
    assert sorted(roles_of(p, guardian)) == ["bme.PAUSER_ROLE", "escrow.PAUSER_ROLE"]
    assert roles_of(p, slasher) == ["registry.SLASHER_ROLE"]
    assert roles_of(p, relayer) == ["escrow.RELAYER_ROLE"]
    # Governance is the timelock alone, which administers itself.
    for name in ("timelock", "oracle", "token", "credit", "bme", "escrow", "registry"):
        assert getattr(p, name).functions.hasRole(DEFAULT_ADMIN_ROLE, gov).call(), name
    # The oracle as deployed: 30 s freshness, 10 % per push; no price until the feeder pushes one.
    assert p.oracle.functions.maxAge().call() == 30
    assert p.oracle.functions.maxStepBps().call() == 1000
    assert p.oracle.functions.stepPeriod().call() == 0  # the rate bound is a deployment's choice
    assert p.oracle.functions.latestPrice().call()[0] == 0


def test_the_deployer_key_can_do_nothing_after_the_deployment(
    spread: Protocol, keys: list[LocalAccount]
) -> None:
    """The attack: the deployer's key, stolen after the deployment, tries what one key could do before."""
    deployer = keys[0]
    p, client = spread, spread.client
    now = client.timestamp()
    attempts: list[tuple[str, Any]] = [
        ("push a price", p.oracle.functions.pushPrice(10**16, 0, now)),
        ("pause the BME core", p.bme.functions.pause()),
        ("pause the escrow", p.escrow.functions.pause()),
        ("grant itself the feeder role", p.oracle.functions.grantRole(role("FEEDER_ROLE"), deployer.address)),
        ("mint CMP", p.token.functions.mint(deployer.address, 10**24)),
        ("change the oracle", p.bme.functions.setOracle(p.oracle.address)),
        (
            "schedule a timelock operation",
            p.timelock.functions.schedule(p.bme.address, 0, b"", b"\x00" * 32, b"\x00" * 32, 3600),
        ),
        ("slash", p.registry.functions.slash(deployer.address, 1, b"\x01" * 32)),
    ]
    for what, call in attempts:
        with pytest.raises(ContractRevert) as refused:
            client.send(deployer, call)
        assert refused.value.name == "AccessControlUnauthorizedAccount", what
    # The feeder it named can push; a crash in one push is refused by the step bound.
    feeder = keys[1]
    client.send(feeder, p.oracle.functions.pushPrice(10**18, 0, client.timestamp() - 1))
    with pytest.raises(ContractRevert) as refused:
        client.send(feeder, p.oracle.functions.pushPrice(10**16, 0, client.timestamp()))
    assert refused.value.name == "ManualPriceOracleStepTooLarge"


def test_on_a_devnet_the_deployer_keeps_only_the_parts_that_default_to_it() -> None:
    """A local devnet's one-key convenience: unnamed parts go to the deployer, but no admin role stays."""
    deployer = Account.from_key(devnet_keys(1)[0])
    with Anvil() as devnet:
        p = deploy_protocol(ChainClient.connect(devnet.url), deployer, DeployConfig())
        assert sorted(roles_of(p, deployer.address)) == [
            "bme.PAUSER_ROLE",
            "escrow.PAUSER_ROLE",
            "oracle.FEEDER_ROLE",
            "timelock.CANCELLER_ROLE",
            "timelock.EXECUTOR_ROLE",
            "timelock.PROPOSER_ROLE",
        ]


def ape_deploy(
    anvil: Anvil, deployer: LocalAccount, out: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ape"),
            "run",
            "deploy",
            "--network",
            anvil.url,
            "--out",
            str(out),
            *args,
        ],
        cwd=project_root(),
        env={**os.environ, "BME_DEPLOYER_KEY": deployer.key.hex()},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_ape_script_refuses_one_key_off_a_devnet_and_deploys_distinct_roles(
    anvil: Anvil, keys: list[LocalAccount], tmp_path: Path
) -> None:
    deployer, feeder, proposer, guardian = keys[:4]
    out = tmp_path / "deployment.json"
    done = ape_deploy(anvil, deployer, out)
    assert done.returncode != 0, done.stdout
    assert "no feeder given; no proposer given; no guardian given" in done.stdout + done.stderr
    assert not out.exists()

    roles = ["--feeder", feeder.address, "--proposer", proposer.address, "--guardian", guardian.address]
    done = ape_deploy(anvil, deployer, out, *roles)
    assert done.returncode == 0, done.stdout + done.stderr
    p = Protocol.at(ChainClient.connect(anvil.url), Deployment.load(out))
    assert p.deployment.chain_id == CHAIN_ID
    assert roles_of(p, deployer.address) == []
    assert roles_of(p, feeder.address) == ["oracle.FEEDER_ROLE"]
    assert sorted(roles_of(p, guardian.address)) == ["bme.PAUSER_ROLE", "escrow.PAUSER_ROLE"]
    assert "timelock.PROPOSER_ROLE" in roles_of(p, proposer.address)

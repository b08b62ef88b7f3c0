"""`bme devnet fund|advance|price` against a local stack, and their refusal on a chain that is no devnet.

The price set by `bme devnet price` survives a jump in time (`advance` pushes it again at the new time)
and the stack's own feeder keeps pushing that price, not the one it started with."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from bme import devnet_ops
from bme.chain.client import ChainClient
from bme.chain.deploy import DeployConfig, deploy_protocol
from bme.chain.devnet import Anvil, devnet_keys
from bme.stack import CMP, LocalStack, StackConfig, bme_command


def bme(args: list[str], stack_url: str, deployment: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BME_RPC_URL": stack_url, "BME_DEPLOYMENT": str(deployment), "COLUMNS": "200"}
    return subprocess.run([*bme_command(), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        work_dir=tmp_path_factory.mktemp("devnet"), faucet_funds=devnet_ops.FAUCET_CMP, price_interval_s=1.0
    )
    with LocalStack(config) as st:
        yield st


def oracle(st: LocalStack) -> tuple[int, int]:
    price, updated_at, _confidence = st.protocol.oracle.functions.latestPrice().call()
    return int(price), int(updated_at)


def test_price_and_advance_keep_the_set_price_fresh(stack: LocalStack) -> None:
    done = bme(["devnet", "price", "1.25"], stack.anvil.url, stack.deployment_file)
    assert done.returncode == 0, done.stderr
    assert "$1.25 per CMP" in done.stdout
    assert oracle(stack)[0] == 125 * CMP // 100

    before = stack.client.timestamp()
    done = bme(["devnet", "advance", "3600"], stack.anvil.url, stack.deployment_file)
    assert done.returncode == 0, done.stderr
    now = stack.client.timestamp()
    assert now >= before + 3600
    price, updated_at = oracle(stack)
    assert price == 125 * CMP // 100 and now - updated_at <= 2  # pushed again at the new time
    # The stack's feeder keeps pushing the price that was set, not its own first one.
    time.sleep(2.5)
    price, later = oracle(stack)
    assert price == 125 * CMP // 100 and later > updated_at

    epoch = stack.protocol.escrow.functions.currentEpoch().call()
    done = bme(["devnet", "advance", "--to-epoch-end"], stack.anvil.url, stack.deployment_file)
    assert done.returncode == 0, done.stderr
    assert stack.protocol.escrow.functions.currentEpoch().call() == epoch + 1
    assert f"epoch {epoch} is over" in done.stdout


def test_fund_sends_eth_and_cmp_from_the_faucet(stack: LocalStack) -> None:
    someone = Account.create().address
    done = bme(
        ["devnet", "fund", someone, "--eth", "0.5", "--cmp", "12.5"], stack.anvil.url, stack.deployment_file
    )
    assert done.returncode == 0, done.stderr
    assert stack.client.w3.eth.get_balance(someone) == CMP // 2
    assert stack.protocol.token.functions.balanceOf(someone).call() == 125 * CMP // 10
    too_much = bme(["devnet", "fund", someone, "--cmp", "2000000"], stack.anvil.url, stack.deployment_file)
    assert too_much.returncode == 1
    assert too_much.stderr.startswith("error: the devnet faucet") and "less than" in too_much.stderr


def test_the_helpers_refuse_a_chain_that_is_no_devnet(tmp_path: Path) -> None:
    with Anvil(chain_id=5) as anvil:
        client = ChainClient.connect(anvil.url)
        deployer, feeder, proposer, guardian = devnet_keys(4)
        roles = DeployConfig(
            feeders=[Account.from_key(feeder).address],
            proposers=[Account.from_key(proposer).address],
            guardian=Account.from_key(guardian).address,
        )
        protocol = deploy_protocol(client, Account.from_key(deployer), roles)
        deployment = tmp_path / "deployment.json"
        protocol.deployment.save(deployment)
        assert json.loads(deployment.read_text())["chain_id"] == 5
        for args in (["advance", "60"], ["price", "2"], ["fund", Account.create().address]):
            done = bme(["devnet", *args], anvil.url, deployment)
            assert done.returncode == 1, (args, done.stdout)
            assert "chain 5 is not a devnet" in done.stderr, done.stderr
            assert len(done.stderr.strip().splitlines()) == 1

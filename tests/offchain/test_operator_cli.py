"""`bme operator register|update|unbond|withdraw|claim|redeem|status` as real processes against anvil: the
happy path of an operator's life, and the failures that must be one line on stderr with exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, Protocol, deploy_protocol
from bme.chain.devnet import Anvil, devnet_keys, free_port
from bme.errors import ConfigError
from bme.wallet.keystore import WrongPassword, create_keystore, keystore_address, load_account

CMP, CRD = 10**18, 10**6
PASSWORD = "correct horse battery staple"
EPOCH = 3_600
UNBONDING = 600


@dataclass
class Devnet:
    anvil: Anvil
    client: ChainClient
    protocol: Protocol
    deployer: LocalAccount
    user: LocalAccount
    relayer: LocalAccount
    operator: LocalAccount
    keystore: Path
    deployment: Path

    def bme(
        self, *args: str, password: str = PASSWORD, rpc: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BME_")}
        env |= {
            "BME_PASSWORD": password,
            "BME_RPC_URL": rpc or self.anvil.url,
            "BME_DEPLOYMENT": str(self.deployment),
        }
        return subprocess.run(
            [sys.executable, "-m", "bme.cli.main", "operator", *args, "--keystore", str(self.keystore)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    def advance(self, seconds: int) -> None:
        self.client.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.client.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        self.client.send(
            self.deployer, self.protocol.oracle.functions.pushPrice(CMP, 0, self.client.timestamp())
        )

    def work(self, n: int, charge: int) -> None:
        """The user pays for job `n`; the relayer settles it to the operator, charging `charge` credits."""
        p, c = self.protocol, self.client
        spec = n.to_bytes(32, "big")
        c.send(
            self.user,
            p.escrow.functions.burnForJob(100 * CMP, 0, SMOLLM2.model_id, spec, c.timestamp() + 600),
        )
        job = p.escrow.functions.jobIdFor(self.user.address, spec).call()
        settlement = (
            job,
            self.operator.address,
            0,
            charge * 5,
            b"\x01" * 32,
        )  # 200,000 units per million out
        c.send(self.relayer, p.escrow.functions.settle([settlement]))


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: Any) -> Iterator[Devnet]:
    tmp = tmp_path_factory.mktemp("operator-cli")
    deployer, user, relayer = (Account.from_key(k) for k in devnet_keys(3))
    operator = Account.create()
    with Anvil() as anvil:
        client = ChainClient.connect(anvil.url)
        client.send(deployer, to=operator.address, value=10**18)
        protocol = deploy_protocol(
            client,
            deployer,
            DeployConfig(
                timelock_delay=0,
                epoch_length=EPOCH,
                genesis={user.address: 10_000 * CMP, operator.address: 1_500 * CMP},
                relayers=[relayer.address],
                unbonding_delay=UNBONDING,
            ),
        )
        client.send(user, protocol.token.functions.approve(protocol.bme.address, 2**256 - 1))
        deployment = tmp / "deployment.json"
        protocol.deployment.save(deployment)
        keystore = tmp / "operator.json"
        create_keystore(keystore, PASSWORD, operator.key)
        yield Devnet(anvil, client, protocol, deployer, user, relayer, operator, keystore, deployment)


def fails(result: subprocess.CompletedProcess[str], message: str) -> None:
    """The command failed with exit code 1 and exactly one line on stderr, containing `message`."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr


def test_keystore_round_trip_and_wrong_password(tmp_path: Path) -> None:
    account = Account.create()
    path = tmp_path / "k.json"
    assert create_keystore(path, "pw", account.key) == account.address
    assert path.stat().st_mode & 0o777 == 0o600
    assert account.key.hex() not in path.read_text()
    assert keystore_address(path) == account.address
    assert load_account(path, "pw").address == account.address
    with pytest.raises(WrongPassword, match="wrong password"):
        load_account(path, "not it")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        create_keystore(path, "pw")
    with pytest.raises(ConfigError, match="no keystore at"):
        keystore_address(tmp_path / "missing.json")


def test_an_operators_life_through_the_cli(devnet: Devnet) -> None:
    p, op = devnet.protocol, devnet.operator.address
    reg = p.registry.functions

    r = devnet.bme("register", "--stake", "1000", "--endpoint", "http://127.0.0.1:8090/v1", "--model", "1")
    assert r.returncode == 0, r.stderr
    assert "approve: transaction 0x" in r.stdout and "register: transaction 0x" in r.stdout
    assert "gas used" in r.stdout and f"operator {op}: bonded" in r.stdout
    assert "stake 1,000.000000 CMP (active)" in r.stdout
    assert reg.operatorOf(op).call()[0] == 1_000 * CMP and reg.isActive(op).call()

    fails(
        devnet.bme("register", "--stake", "1000", "--endpoint", "http://x/v1", "--model", "1"),
        "already registered",
    )

    r = devnet.bme("update", "--endpoint", "http://10.1.1.1:9000/v1", "--model", "1", "--model", "2")
    assert r.returncode == 0, r.stderr
    assert (reg.endpointOf(op).call(), reg.modelsOf(op).call()) == ("http://10.1.1.1:9000/v1", [1, 2])
    assert "endpoint http://10.1.1.1:9000/v1, models [1, 2]" in r.stdout

    devnet.advance(1)
    devnet.work(1, 3 * CRD)
    fails(devnet.bme("claim"), "has not ended")  # no finished epoch with work yet
    devnet.advance(EPOCH)
    r = devnet.bme("status")
    assert r.returncode == 0, r.stderr
    assert "rewards to claim 2,000,000.000000 CMP" in r.stdout and "job earnings 3.000000 CRD" in r.stdout

    r = devnet.bme("claim")
    assert r.returncode == 0, r.stderr
    assert (
        "claim: transaction 0x" in r.stdout and "claimed 2,000,000.000000 CMP for epochs 0 to 0" in r.stdout
    )
    assert p.token.functions.balanceOf(op).call() == 500 * CMP + 2_000_000 * CMP
    fails(devnet.bme("claim"), "already claimed through epoch 0")

    r = devnet.bme("redeem")
    assert r.returncode == 0, r.stderr
    assert "redeemed 3.000000 CRD for 3.000000 CMP" in r.stdout  # $1.00, no settle spread
    assert p.escrow.functions.earningsOf(op).call() == 0
    fails(devnet.bme("redeem"), "nothing to redeem")

    r = devnet.bme("unbond")
    assert r.returncode == 0, r.stderr
    assert f"operator {op}: unbonding" in r.stdout
    fails(devnet.bme("withdraw"), "may withdraw only from time")
    devnet.advance(UNBONDING)
    r = devnet.bme("withdraw")
    assert r.returncode == 0, r.stderr
    assert f"operator {op}: not registered" in r.stdout
    assert p.token.functions.balanceOf(op).call() == 1_500 * CMP + 2_000_003 * CMP


def test_wrong_password_fails_in_one_line(devnet: Devnet) -> None:
    fails(devnet.bme("unbond", password="wrong"), "wrong password for the keystore")


def test_too_little_stake_fails_in_one_line(devnet: Devnet) -> None:
    fails(
        devnet.bme("register", "--stake", "999.5", "--endpoint", "http://x/v1", "--model", "1"),
        "below the minimum of 1,000.000000 CMP",
    )


def test_nothing_to_claim_fails_in_one_line(devnet: Devnet, tmp_path: Path) -> None:
    # A second operator that registered but never served a job.
    other = Account.create()
    c, p = devnet.client, devnet.protocol
    c.send(devnet.deployer, to=other.address, value=10**18)
    c.send(devnet.user, p.token.functions.transfer(other.address, 1_000 * CMP))
    c.send(other, p.token.functions.approve(p.registry.address, 1_000 * CMP))
    c.send(other, p.registry.functions.register(1_000 * CMP, "http://other/v1", [1]))
    devnet.advance(EPOCH)
    keystore = tmp_path / "other.json"
    create_keystore(keystore, PASSWORD, other.key)
    run = Devnet(**{**devnet.__dict__, "keystore": keystore})
    fails(run.bme("claim"), "nothing to claim")


def test_unreachable_rpc_fails_in_one_line(devnet: Devnet) -> None:
    fails(devnet.bme("status", rpc=f"http://127.0.0.1:{free_port()}"), "cannot reach the chain")


def test_missing_deployment_fails_in_one_line(devnet: Devnet, tmp_path: Path) -> None:
    run = Devnet(**{**devnet.__dict__, "deployment": tmp_path / "nowhere.json"})
    fails(run.bme("status"), "no deployment file at")

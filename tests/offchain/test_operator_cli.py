"""`bme operator register|update|unbond|withdraw|claim|redeem|status` as real processes against anvil: the
happy path of an operator's life (signing with a wallet named in the wallet directory, or a keystore file),
and the failures that must be one line on stderr with exit code 1: a wrong password, too little stake, no ETH
for gas, a stale oracle (named before any gas is spent), nothing to claim, an unreachable RPC."""

from __future__ import annotations

import os
import re
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
        self,
        *args: str,
        password: str = PASSWORD,
        rpc: str | None = None,
        wallet: str | None = None,
        wallets: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """`bme operator ARGS` signing with `--wallet WALLET` from the directory `wallets`, or else with
        `--keystore` and the devnet's operator keystore."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BME_")} | (env or {})
        env |= {
            "BME_PASSWORD": password,
            "BME_RPC_URL": rpc or self.anvil.url,
            "BME_DEPLOYMENT": str(self.deployment),
        }
        if wallets is not None:
            env["BME_WALLET_DIR"] = str(wallets)
        signer = ["--wallet", wallet] if wallet is not None else ["--keystore", str(self.keystore)]
        return subprocess.run(
            [sys.executable, "-m", "bme.cli.main", "operator", *args, *signer],
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

    def work(self, n: int, charge: int, operator: str | None = None) -> None:
        """The user pays for job `n`; the relayer settles it to `operator` (default: the devnet's operator),
        charging `charge` credits."""
        p, c = self.protocol, self.client
        spec = n.to_bytes(32, "big")
        c.send(
            self.user,
            p.escrow.functions.burnForJob(100 * CMP, 0, SMOLLM2.model_id, spec, c.timestamp() + 600),
        )
        job = p.escrow.functions.jobIdFor(self.user.address, spec).call()
        settlement = (
            job,
            operator or self.operator.address,
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
    # The operator's keystore is the wallet named "operator" in its directory: `--wallet operator`.
    by_name = {"wallet": "operator", "wallets": devnet.keystore.parent}

    r = devnet.bme(
        "register", "--stake", "1000", "--endpoint", "http://127.0.0.1:8090/v1", "--model", "1", **by_name
    )
    assert r.returncode == 0, r.stderr
    assert "approve: transaction 0x" in r.stdout and "register: transaction 0x" in r.stdout
    assert "gas used" in r.stdout and f"operator {op}: bonded" in r.stdout
    assert "stake 1,000 CMP (active)" in r.stdout
    assert reg.operatorOf(op).call()[0] == 1_000 * CMP and reg.isActive(op).call()

    fails(
        devnet.bme("register", "--stake", "1000", "--endpoint", "http://x/v1", "--model", "1", **by_name),
        "already registered",
    )

    r = devnet.bme(
        "update", "--endpoint", "http://10.1.1.1:9000/v1", "--model", "1", "--model", "2", **by_name
    )
    assert r.returncode == 0, r.stderr
    assert (reg.endpointOf(op).call(), reg.modelsOf(op).call()) == ("http://10.1.1.1:9000/v1", [1, 2])
    assert "endpoint http://10.1.1.1:9000/v1, models [1, 2]" in r.stdout

    devnet.advance(1)
    devnet.work(1, 3 * CRD)
    # Staked during epoch 0, it earns from epoch 1, claimable once two more epochs have ended (from epoch 4).
    fails(devnet.bme("claim", **by_name), "challenge window")
    devnet.advance(4 * EPOCH)
    r = devnet.bme("status", **by_name)
    assert r.returncode == 0, r.stderr
    assert "rewards to claim 2,000,000 CMP" in r.stdout and "job earnings 3 CRD" in r.stdout

    r = devnet.bme("claim", **by_name)
    assert r.returncode == 0, r.stderr
    assert "claim: transaction 0x" in r.stdout and "claimed 2,000,000 CMP for epochs 0 to 1" in r.stdout
    assert r.stderr == ""  # the receipt's CMP transfer log is not decoded as a claim: no warnings
    assert p.token.functions.balanceOf(op).call() == 500 * CMP + 2_000_000 * CMP
    fails(devnet.bme("claim", **by_name), "already claimed through epoch 1")

    r = devnet.bme("redeem", **by_name)
    assert r.returncode == 0, r.stderr
    assert "redeemed 3 CRD for 3 CMP" in r.stdout  # $1.00, no settle spread
    assert r.stderr == ""  # no warnings about the receipt's other logs
    assert p.escrow.functions.earningsOf(op).call() == 0
    fails(devnet.bme("redeem", **by_name), "nothing to redeem")

    r = devnet.bme("unbond", **by_name)
    assert r.returncode == 0, r.stderr
    assert f"operator {op}: unbonding" in r.stdout
    assert re.search(r"unbonding ends \d{4}-\d\d-\d\d \d\d:\d\d:\d\d.* \(in (9|10) min\)", r.stdout), r.stdout
    fails(devnet.bme("withdraw", **by_name), "may withdraw only from")
    devnet.advance(UNBONDING)
    r = devnet.bme("withdraw", **by_name)
    assert r.returncode == 0, r.stderr
    assert f"operator {op}: not registered" in r.stdout
    assert p.token.functions.balanceOf(op).call() == 1_500 * CMP + 2_000_003 * CMP


def test_wrong_password_fails_in_one_line(devnet: Devnet) -> None:
    fails(devnet.bme("unbond", password="wrong"), "wrong password for the keystore")


def test_too_little_stake_fails_in_one_line(devnet: Devnet) -> None:
    fails(
        devnet.bme("register", "--stake", "999.5", "--endpoint", "http://x/v1", "--model", "1"),
        "below the minimum of 1,000 CMP",
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
    url = f"http://127.0.0.1:{free_port()}"
    fails(devnet.bme("status", rpc=url), f"cannot reach the chain at {url}: connection refused")


def test_missing_deployment_fails_in_one_line(devnet: Devnet, tmp_path: Path) -> None:
    run = Devnet(**{**devnet.__dict__, "deployment": tmp_path / "nowhere.json"})
    fails(run.bme("status"), "no deployment file at")


def _account_with_cmp(devnet: Devnet, wallets: Path, name: str, *, eth: int, cmp: int) -> LocalAccount:
    """A new account holding `eth` wei and `cmp` CMP base units, as the wallet `name` in `wallets`."""
    account = Account.create()
    if eth:
        devnet.client.send(devnet.deployer, to=account.address, value=eth)
    devnet.client.send(devnet.user, devnet.protocol.token.functions.transfer(account.address, cmp))
    wallets.mkdir(exist_ok=True)
    create_keystore(wallets / f"{name}.json", PASSWORD, account.key)
    return account


def test_a_wallet_without_eth_for_gas_fails_in_one_line(devnet: Devnet, tmp_path: Path) -> None:
    wallets = tmp_path / "wallets"
    broke = _account_with_cmp(devnet, wallets, "broke", eth=0, cmp=1_000 * CMP)
    r = devnet.bme(
        "register",
        "--stake",
        "1000",
        "--endpoint",
        "http://x/v1",
        "--model",
        "1",
        wallet="broke",
        wallets=wallets,
    )
    fails(r, f"wallet broke ({broke.address}) has 0 ETH, too little to pay gas for approve (about 0.")
    assert "ETH needed); fund it with `bme devnet fund broke --eth 1` on a devnet" in r.stderr
    assert (
        devnet.protocol.token.functions.allowance(broke.address, devnet.protocol.registry.address).call() == 0
    )


def test_a_stale_oracle_is_named_before_any_gas_is_spent(devnet: Devnet, tmp_path: Path) -> None:
    wallets = tmp_path / "wallets"
    op = _account_with_cmp(devnet, wallets, "earner", eth=10**18, cmp=0)
    devnet.advance(1)
    devnet.work(101, 2 * CRD, operator=op.address)
    w3 = devnet.client.w3
    # The chain's clock moves on without a block: the latest block and the price in it still look fresh; the
    # block the redemption would be mined in is 100 s later, and the oracle's 30 s limit refuses it there.
    w3.provider.make_request("evm_increaseTime", [100])  # type: ignore[arg-type]
    before = (w3.eth.get_balance(op.address), w3.eth.get_transaction_count(op.address))
    r = devnet.bme("redeem", wallet="earner", wallets=wallets)
    fails(r, "error: the oracle price is stale (last update 10")
    assert re.search(r"stale \(last update 1\d\d s ago, limit 30 s\)$", r.stderr.strip()), r.stderr
    assert (w3.eth.get_balance(op.address), w3.eth.get_transaction_count(op.address)) == before
    assert devnet.protocol.escrow.functions.earningsOf(op.address).call() == 2 * CRD
    devnet.advance(1)  # a fresh price for whatever follows
    r = devnet.bme("redeem", wallet="earner", wallets=wallets)
    assert r.returncode == 0 and "redeemed 2 CRD for 2 CMP" in r.stdout, r.stderr


def test_wallet_and_keystore_are_exclusive(devnet: Devnet, tmp_path: Path) -> None:
    r = devnet.bme(
        "status", "--keystore", str(devnet.keystore), wallet="operator", wallets=devnet.keystore.parent
    )
    fails(r, "give --wallet (operator) or --keystore")
    # A keystore exported for another command (the relayer's) yields to a wallet named on the command line.
    r = devnet.bme(
        "status",
        wallet="operator",
        wallets=devnet.keystore.parent,
        env={"BME_KEYSTORE": str(tmp_path / "x.json")},
    )
    assert r.returncode == 0 and f"operator {devnet.operator.address}" in r.stdout, r.stderr
    fails(devnet.bme("status", wallet="nobody", wallets=tmp_path), "no wallet named 'nobody'")

"""A devnet for the user commands: anvil with the protocol deployed at a price with a confidence band, the
embedded model and a dearer one listed, a funded user, a relayer and an active operator serving both models;
and a `bme` runner over it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner, Result

from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, ModelListing, Protocol, deploy_protocol
from bme.chain.devnet import Anvil, devnet_keys
from bme.cli.main import app

CMP, CRD = 10**18, 10**6
PASSWORD = "correct horse battery staple"
#: $1.37 per CMP, confidence $0.003 (22 bps, within the 150 bps the core accepts): burns price at $1.364.
PRICE, CONFIDENCE = 1_370_000_000_000_000_000, 3_000_000_000_000_000
#: A model priced like a large hosted one ($3 / $15 per million tokens), so jobs can exceed the minimum mint.
BIG = ModelListing(7, "Big-Model-70B", 3_000_000, 15_000_000)


@dataclass
class Devnet:
    anvil: Anvil
    client: ChainClient
    protocol: Protocol
    deployer: LocalAccount
    user: LocalAccount
    relayer: LocalAccount
    deployment: Path
    #: Registered with the minimum stake, serving both models: the escrow settles only to such operators.
    operator: LocalAccount

    def fresh_price(self, price: int = PRICE, confidence: int = CONFIDENCE) -> None:
        """Pushes `price` observed one second after the head, so burns pass the 30 s staleness check."""
        ts = self.client.timestamp() + 1
        self.client.w3.provider.make_request("evm_mine", [ts])  # type: ignore[arg-type]
        self.client.send(self.deployer, self.protocol.oracle.functions.pushPrice(price, confidence, ts))

    def env(self, **extra: str) -> dict[str, str]:
        return {"BME_RPC_URL": self.anvil.url, "BME_DEPLOYMENT": str(self.deployment)} | extra


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: Any) -> Iterator[Devnet]:
    tmp = tmp_path_factory.mktemp("user-devnet")
    deployer, user, relayer, operator = (Account.from_key(k) for k in devnet_keys(4))
    with Anvil() as anvil:
        client = ChainClient.connect(anvil.url)
        protocol = deploy_protocol(
            client,
            deployer,
            DeployConfig(
                timelock_delay=0,
                price=PRICE,
                confidence=CONFIDENCE,
                models=[SMOLLM2, BIG],
                genesis={user.address: 10_000 * CMP, operator.address: 1_000 * CMP},
                relayers=[relayer.address],
            ),
        )
        client.send(user, protocol.token.functions.approve(protocol.bme.address, 2**256 - 1))
        client.send(operator, protocol.token.functions.approve(protocol.registry.address, 1_000 * CMP))
        client.send(
            operator,
            protocol.registry.functions.register(
                1_000 * CMP, "http://operator.invalid/v1", [SMOLLM2.model_id, BIG.model_id]
            ),
        )
        deployment = tmp / "deployment.json"
        protocol.deployment.save(deployment)
        yield Devnet(anvil, client, protocol, deployer, user, relayer, deployment, operator)


@pytest.fixture(autouse=True)
def _no_bme_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's BME_* settings (a password, a wallet directory, an RPC) must not leak into a test."""
    for key in list(os.environ):
        if key.startswith("BME_") and key != "BME_PROJECT_ROOT":
            monkeypatch.delenv(key)


@pytest.fixture
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keystores written in this process use scrypt with n = 16, not 2^18 (a second per encryption): for tests
    about something else than the encryption's strength. Keystores stay valid: the file records n."""
    encrypt = Account.encrypt

    def cheap(private_key: Any, password: str, **kwargs: Any) -> Any:
        return encrypt(private_key, password, **(kwargs | {"iterations": 16}))

    monkeypatch.setattr(Account, "encrypt", staticmethod(cheap))


def quick_keystore(path: Path, password: str, key: str | bytes | None = None) -> str:
    """A keystore as `create_keystore` writes it but with a cheap scrypt (n = 16), for tests about something
    else than the encryption's strength (the default, n = 2^18, takes a second per encryption or unlock)."""
    account = Account.from_key(key) if key is not None else Account.create()
    path.write_text(json.dumps(Account.encrypt(account.key, password, iterations=16)))
    return str(account.address)


def bme(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """`bme ARGS` in this process; a `BmeError` (one line on stderr under `bme`) is left in `.exception`.

    `.stdout` and `.stderr` are apart; `.output` is both, interleaved."""
    return CliRunner().invoke(app, list(args), input=input, env=env)

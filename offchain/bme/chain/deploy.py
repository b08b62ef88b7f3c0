"""Deployment and wiring of the whole protocol, then hand-over of every role to the timelock.

The deployer holds the admin roles only while it wires the contracts; when `deploy_protocol` returns, the
timelock (governance) holds them and the deployer holds none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.types import Nonce
from web3.utils.address import get_create_address

from bme.chain.client import ChainClient
from bme.economics.emission import DEFAULT_HARD_CAP, DEFAULT_SEGMENTS, Schedule, Segment
from bme.economics.params import Parameters
from bme.errors import ChainError

DEFAULT_ADMIN_ROLE = b"\x00" * 32


def role(name: str) -> bytes:
    """The id of an OpenZeppelin AccessControl role constant `name`."""
    return Web3.keccak(text=name)


@dataclass(frozen=True)
class ModelListing:
    """A model in the price book: prices are CRD base units (micro-dollars) per million tokens."""

    model_id: int
    name: str
    input_price_per_million: int
    output_price_per_million: int


#: The embedded model the operator node serves by default, priced like small hosted models.
SMOLLM2 = ModelListing(1, "SmolLM2-135M-Instruct", 100_000, 200_000)


@dataclass
class DeployConfig:
    """What to deploy with. Addresses left empty default to the deployer."""

    timelock_delay: int = 2 * 24 * 3600
    epoch_length: int = 24 * 3600  # Helium's 24 h epochs; AEP-79 allows 65 s to 93,600 s
    price: int = 10**18  # $1.00 per CMP
    confidence: int = 0
    models: list[ModelListing] = field(default_factory=lambda: [SMOLLM2])
    genesis: dict[str, int] = field(default_factory=dict)
    relayers: list[str] = field(default_factory=list)
    feeder: str = ""
    guardian: str = ""
    proposer: str = ""
    slasher: str = ""  # the operator registry's slasher; defaults to the timelock
    emission_segments: tuple[Segment, ...] = DEFAULT_SEGMENTS
    emission_hard_cap: int = DEFAULT_HARD_CAP
    min_stake: int | None = None  # None: the registry's default (1,000 CMP)
    unbonding_delay: int | None = None  # None: the registry's default (21 days)
    # Governance settings applied while the deployer still governs, before the hand-over to the timelock:
    parameters: Parameters | None = None  # None: the BME core's defaults (`BmeParameters.defaults`)
    seed_tokens: int | None = None  # None: no seed buffer in the collateral ratio
    mint_limit: int | None = None  # redemptions' window; None: 5x the largest epoch emission (Helium)
    emission_limit: int | None = None  # emissions' own window; None: 5x the largest epoch emission
    max_job_duration: int | None = None  # None: the escrow's default (1 day)

    @property
    def schedule(self) -> Schedule:
        """The emission schedule, checked as its constructor checks it."""
        return Schedule(tuple(self.emission_segments), self.emission_hard_cap)


@dataclass
class Deployment:
    """Where the protocol lives."""

    chain_id: int
    timelock: str
    oracle: str
    token: str
    credit: str
    bme: str
    escrow: str
    deployed_at: int
    block_number: int
    registry: str = ""
    emissions: str = ""
    first_block: int = 0  # the first block of the deployment: where event ingestion starts

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        return cls(**json.loads(path.read_text()))


@dataclass
class Protocol:
    """The deployed contracts, bound to a client."""

    client: ChainClient
    deployment: Deployment
    timelock: Contract
    oracle: Contract
    token: Contract
    credit: Contract
    bme: Contract
    escrow: Contract
    registry: Contract
    emissions: Contract

    @classmethod
    def at(cls, client: ChainClient, d: Deployment) -> Protocol:
        return cls(
            client,
            d,
            client.contract("BmeTimelock", d.timelock),
            client.contract("ManualPriceOracle", d.oracle),
            client.contract("ComputeToken", d.token),
            client.contract("ComputeCredit", d.credit),
            client.contract("BurnMintEquilibrium", d.bme),
            client.contract("JobEscrow", d.escrow),
            client.contract("OperatorRegistry", d.registry),
            client.contract("EmissionSchedule", d.emissions),
        )


def deploy_protocol(client: ChainClient, deployer: LocalAccount, config: DeployConfig) -> Protocol:
    """Deploys, wires and configures every contract, then hands all authority to the timelock."""
    me = deployer.address
    feeder = config.feeder or me
    guardian = config.guardian or me
    proposer = config.proposer or me
    schedule = config.schedule
    send = client.send
    first_block = client.w3.eth.block_number + 1

    timelock = client.deploy(deployer, "BmeTimelock", config.timelock_delay, [proposer], [proposer], me)
    gov = timelock.address
    oracle = client.deploy(deployer, "ManualPriceOracle", gov, feeder)
    token = client.deploy(deployer, "ComputeToken", me)
    credit = client.deploy(deployer, "ComputeCredit", me)
    # The BME core and the escrow name each other immutably: the escrow is the deployer's next contract.
    escrow_address = get_create_address(me, Nonce(client.w3.eth.get_transaction_count(me, "pending") + 1))
    bme = client.deploy(
        deployer,
        "BurnMintEquilibrium",
        token.address,
        credit.address,
        oracle.address,
        escrow_address,
        me,
        guardian,
    )
    bme_deployed_at = client.timestamp()  # the start of the BME core's first mint windows
    escrow = client.deploy(
        deployer, "JobEscrow", bme.address, credit.address, token.address, me, guardian, config.epoch_length
    )
    if escrow.address != escrow_address:
        raise ChainError(
            f"the escrow was deployed at {escrow.address}, not {escrow_address} as the BME core expects"
        )
    registry = client.deploy(
        deployer,
        "OperatorRegistry",
        token.address,
        escrow.address,
        me,
        Web3.to_checksum_address(config.slasher) if config.slasher else gov,
    )
    emissions = client.deploy(
        deployer,
        "EmissionSchedule",
        escrow.address,
        registry.address,
        bme.address,
        token.address,
        schedule.hard_cap,
        [s.as_tuple() for s in schedule.segments],
    )

    # The minters are wired once, by the deployer, which then renounces their admin roles below: neither the
    # deployer nor governance can add or remove a minter afterwards.
    minter, governor = role("MINTER_ROLE"), role("GOVERNOR_ROLE")
    send(deployer, token.functions.grantRole(minter, bme.address))
    send(deployer, credit.functions.grantRole(minter, bme.address))
    send(deployer, credit.functions.grantRole(minter, escrow.address))
    for m in config.models:
        send(
            deployer,
            escrow.functions.setModelPrice(
                m.model_id, m.name, m.input_price_per_million, m.output_price_per_million
            ),
        )
    # Emissions mint through the BME core's rolling windows, sized as Helium's breaker: 5x epoch emission.
    send(deployer, bme.functions.grantRole(role("EMITTER_ROLE"), emissions.address))
    mint_limit = schedule.mint_limit if config.mint_limit is None else config.mint_limit
    send(deployer, bme.functions.setMintLimit(mint_limit))
    emission_limit = schedule.mint_limit if config.emission_limit is None else config.emission_limit
    send(deployer, bme.functions.setEmissionLimit(emission_limit))
    if config.parameters is not None:
        send(deployer, bme.functions.setParameters(config.parameters.as_tuple()))
    if config.seed_tokens is not None:
        send(deployer, bme.functions.setSeed(config.seed_tokens))
    if config.max_job_duration is not None:
        send(deployer, escrow.functions.setMaxJobDuration(config.max_job_duration))
    if config.min_stake is not None:
        send(deployer, registry.functions.setMinStake(config.min_stake))
    if config.unbonding_delay is not None:
        send(deployer, registry.functions.setUnbondingDelay(config.unbonding_delay))
    for relayer in config.relayers:
        send(deployer, escrow.functions.grantRole(role("RELAYER_ROLE"), Web3.to_checksum_address(relayer)))
    if config.genesis:
        send(deployer, token.functions.grantRole(minter, me))
        for holder, amount in config.genesis.items():
            send(deployer, token.functions.mint(Web3.to_checksum_address(holder), amount))
        send(deployer, token.functions.renounceRole(minter, me))

    # Hand-over: the minters are fixed for good; the timelock becomes admin and governor everywhere; the
    # deployer keeps nothing.
    send(deployer, token.functions.renounceRole(role("MINTER_ADMIN_ROLE"), me))
    send(deployer, credit.functions.renounceRole(role("MINTER_ADMIN_ROLE"), me))
    send(deployer, bme.functions.renounceRole(role("EMITTER_ADMIN_ROLE"), me))
    for c in (bme, escrow, registry):
        send(deployer, c.functions.grantRole(governor, gov))
        send(deployer, c.functions.grantRole(DEFAULT_ADMIN_ROLE, gov))
        send(deployer, c.functions.renounceRole(governor, me))
        send(deployer, c.functions.renounceRole(DEFAULT_ADMIN_ROLE, me))
    for c in (token, credit):
        send(deployer, c.functions.grantRole(DEFAULT_ADMIN_ROLE, gov))
        send(deployer, c.functions.renounceRole(DEFAULT_ADMIN_ROLE, me))
    send(deployer, timelock.functions.renounceRole(DEFAULT_ADMIN_ROLE, me))

    if feeder == me:
        now = client.timestamp()
        send(deployer, oracle.functions.pushPrice(config.price, config.confidence, now))

    deployment = Deployment(
        chain_id=client.chain_id,
        timelock=gov,
        oracle=oracle.address,
        token=token.address,
        credit=credit.address,
        bme=bme.address,
        escrow=escrow.address,
        deployed_at=bme_deployed_at,
        block_number=client.w3.eth.block_number,
        registry=registry.address,
        emissions=emissions.address,
        first_block=first_block,
    )
    return Protocol(client, deployment, timelock, oracle, token, credit, bme, escrow, registry, emissions)

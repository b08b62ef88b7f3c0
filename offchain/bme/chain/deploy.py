"""Deployment and wiring of the whole protocol, then hand-over of every role to the timelock.

The deployer holds the admin roles only while it wires the contracts; when `deploy_protocol` returns, the
timelock (governance) holds them and the deployer holds no role but those it was named for. Who else holds
what is given explicitly: the oracle's feeders, the timelock's proposers, executors and cancellers, the
guardian that may pause, the registry's slasher. On a chain that is not a local devnet, a deployment is
refused unless the feeder, proposer and guardian are given and are distinct accounts, none of them the
deployer: one key in charge of prices, governance and the pause is the risk this rule removes. A local devnet
(`LOCAL_CHAIN_IDS`) keeps the one-key convenience: an unnamed role there goes to the deployer.
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
from bme.economics.emission import (
    DEFAULT_CLAIM_DELAY_EPOCHS,
    DEFAULT_HARD_CAP,
    DEFAULT_SEGMENTS,
    Schedule,
    Segment,
)
from bme.economics.oracle import DEFAULT_MAX_AGE, DEFAULT_MAX_STEP_BPS, DEFAULT_STEP_PERIOD
from bme.economics.params import DEFAULT_MIN_JOB_DURATION, Parameters
from bme.errors import ChainError, ConfigError

DEFAULT_ADMIN_ROLE = b"\x00" * 32
#: Chain ids of local devnets: anvil and hardhat (31337); ganache, geth's dev mode, Ape's test chain (1337).
DEVNET_CHAIN_IDS = (31337, 1337)
#: Where one key may hold every role: the devnets and eth-tester's in-process chain (`--chain inprocess`).
LOCAL_CHAIN_IDS = (*DEVNET_CHAIN_IDS, 131277322940537)


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
    """What to deploy with. On a local devnet, a role left unnamed goes to the deployer (the slasher: to the
    timelock); elsewhere `feeders`, `proposers` and `guardian` are required (`check_roles`)."""

    timelock_delay: int = 2 * 24 * 3600
    epoch_length: int = 24 * 3600  # Helium's 24 h epochs; AEP-79 allows 65 s to 93,600 s
    price: int = 10**18  # $1.00 per CMP
    confidence: int = 0
    models: list[ModelListing] = field(default_factory=lambda: [SMOLLM2])
    genesis: dict[str, int] = field(default_factory=dict)
    relayers: list[str] = field(default_factory=list)
    feeders: list[str] = field(default_factory=list)  # may push prices to the manual oracle
    proposers: list[str] = field(default_factory=list)  # schedule (and cancel) timelock operations
    executors: list[str] = field(default_factory=list)  # execute ready operations; [] = the proposers
    cancellers: list[str] = field(default_factory=list)  # cancel scheduled operations, beside the proposers
    guardian: str = ""  # may pause the BME core and the escrow
    slasher: str = ""  # the operator registry's slasher; defaults to the timelock
    oracle_max_age: int = DEFAULT_MAX_AGE  # seconds a pushed price stays usable
    oracle_max_step_bps: int = DEFAULT_MAX_STEP_BPS  # the most one push moves the price; 0: no bound (devnet)
    oracle_step_period: int = (
        DEFAULT_STEP_PERIOD  # seconds a full step needs; 0: every push (a rate bound off)
    )
    emission_segments: tuple[Segment, ...] = DEFAULT_SEGMENTS
    emission_hard_cap: int = DEFAULT_HARD_CAP
    claim_delay_epochs: int = DEFAULT_CLAIM_DELAY_EPOCHS  # the emission's challenge window
    min_stake: int | None = None  # None: the registry's default (1,000 CMP)
    unbonding_delay: int | None = None  # None: the registry's default (21 days)
    # Governance settings applied while the deployer still governs, before the hand-over to the timelock:
    parameters: Parameters | None = None  # None: the BME core's defaults (`BmeParameters.defaults`)
    seed_tokens: int | None = None  # None: no seed buffer in the collateral ratio
    mint_limit: int | None = None  # redemptions' window; None: 5x the largest epoch emission (Helium)
    emission_limit: int | None = None  # emissions' own window; None: 5x the largest epoch emission
    max_job_duration: int | None = None  # None: the escrow's default (1 day)
    min_job_duration: int | None = None  # None: the escrow's default (10 minutes)

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


def check_roles(config: DeployConfig, deployer: str, chain_id: int) -> None:
    """Refuses, with every reason at once, a configuration that leaves one key in charge on a chain that is
    not a local devnet: the feeder, proposer and guardian must be given, no account may hold two of these
    parts, the deployer may hold no role at all, and the oracle's price step must be bounded. Every address
    must be one, on any chain. (Executors may include the zero address: anyone may then execute a ready
    operation.)"""
    singles = [a for a in (config.guardian, config.slasher) if a]
    lists = (config.feeders, config.proposers, config.executors, config.cancellers, config.relayers)
    bad = sorted({a for a in (*singles, *(a for part in lists for a in part)) if not Web3.is_address(a)})
    if bad:
        raise ConfigError(f"not an address: {', '.join(bad)}")
    named = {
        "feeder": config.feeders,
        "proposer": config.proposers,
        "guardian": [config.guardian] if config.guardian else [],
    }
    if chain_id in LOCAL_CHAIN_IDS:
        return
    problems = [f"no {part} given" for part, given in named.items() if not given]
    me = Web3.to_checksum_address(deployer)
    holders: dict[str, set[str]] = {}
    for part, given in named.items():
        for address in given:
            holders.setdefault(Web3.to_checksum_address(address), set()).add(part)
    for address, parts in sorted(holders.items()):
        if address == me:
            problems.append(f"the deployer {me} is named {' and '.join(sorted(parts))}")
        elif len(parts) > 1:
            problems.append(
                f"{address} is named {' and '.join(sorted(parts))}: give each part its own account"
            )
    others = {
        "executor": config.executors,
        "canceller": config.cancellers,
        "slasher": [config.slasher] if config.slasher else [],
        "relayer": config.relayers,
    }
    for part, given in others.items():
        if me in (Web3.to_checksum_address(a) for a in given):
            problems.append(f"the deployer {me} is named {part}")
    if config.oracle_max_step_bps == 0:
        problems.append("the oracle's price step is unbounded (oracle_max_step_bps 0)")
    if problems:
        raise ConfigError(
            f"refusing to deploy on chain {chain_id}, which is not a local devnet "
            f"({', '.join(map(str, LOCAL_CHAIN_IDS))}): " + "; ".join(problems)
        )


def _addresses(values: list[str], default: str) -> list[str]:
    return [Web3.to_checksum_address(v) for v in values] or [default]


def deploy_protocol(client: ChainClient, deployer: LocalAccount, config: DeployConfig) -> Protocol:
    """Deploys, wires and configures every contract, then hands all authority to the timelock.

    Refused (`ConfigError`, before any transaction) on a chain that is not a local devnet unless the roles
    are spread over distinct accounts (`check_roles`). When it returns, the deployer holds no role on any
    contract except, on a local devnet only, those it was named for or that default to it (feeder, proposer,
    executor, canceller, guardian)."""
    me = deployer.address
    check_roles(config, me, client.chain_id)
    feeders = _addresses(config.feeders, me)
    guardian = Web3.to_checksum_address(config.guardian) if config.guardian else me
    proposers = _addresses(config.proposers, me)
    executors = [Web3.to_checksum_address(e) for e in config.executors] or proposers
    schedule = config.schedule
    send = client.send
    first_block = client.w3.eth.block_number + 1

    timelock = client.deploy(deployer, "BmeTimelock", config.timelock_delay, proposers, executors, me)
    gov = timelock.address
    oracle = client.deploy(
        deployer,
        "ManualPriceOracle",
        me,
        feeders[0],
        config.oracle_max_age,
        config.oracle_max_step_bps,
        config.oracle_step_period,
    )
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
    # The escrow and the registry name each other with no setter: the escrow is given the address the
    # registry will have (the deployer's next contract); the registry's constructor checks that it does.
    escrow_nonce = client.w3.eth.get_transaction_count(me, "pending")
    registry_address = get_create_address(me, Nonce(escrow_nonce + 1))
    escrow = client.deploy(
        deployer,
        "JobEscrow",
        bme.address,
        credit.address,
        token.address,
        registry_address,
        me,
        guardian,
        config.epoch_length,
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
    if registry.address != registry_address:
        raise RuntimeError(f"the registry was deployed at {registry.address}, not at {registry_address}")
    emissions = client.deploy(
        deployer,
        "EmissionSchedule",
        escrow.address,
        registry.address,
        bme.address,
        token.address,
        schedule.hard_cap,
        [s.as_tuple() for s in schedule.segments],
        config.claim_delay_epochs,
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
    durations = []
    if config.max_job_duration is not None:
        durations.append(escrow.functions.setMaxJobDuration(config.max_job_duration))
    if config.min_job_duration is not None:
        durations.append(escrow.functions.setMinJobDuration(config.min_job_duration))
    # The shortest duration must stay below the longest at every step: a longest at or below the default
    # shortest needs the new shortest first.
    if config.max_job_duration is not None and config.max_job_duration <= DEFAULT_MIN_JOB_DURATION:
        durations.reverse()
    for call in durations:
        send(deployer, call)
    if config.min_stake is not None:
        send(deployer, registry.functions.setMinStake(config.min_stake))
    if config.unbonding_delay is not None:
        send(deployer, registry.functions.setUnbondingDelay(config.unbonding_delay))
    for relayer in config.relayers:
        send(deployer, escrow.functions.grantRole(role("RELAYER_ROLE"), Web3.to_checksum_address(relayer)))
    for feeder in feeders[1:]:
        send(deployer, oracle.functions.grantRole(role("FEEDER_ROLE"), feeder))
    for canceller in config.cancellers:
        send(
            deployer,
            timelock.functions.grantRole(role("CANCELLER_ROLE"), Web3.to_checksum_address(canceller)),
        )
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
    for c in (token, credit, oracle):
        send(deployer, c.functions.grantRole(DEFAULT_ADMIN_ROLE, gov))
        send(deployer, c.functions.renounceRole(DEFAULT_ADMIN_ROLE, me))
    send(deployer, timelock.functions.renounceRole(DEFAULT_ADMIN_ROLE, me))

    if me in feeders:
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

"""A replay on the real contracts: a fresh devnet, the protocol deployed by `deploy_protocol`, and every
action a locally signed transaction, mined in blocks at the driver's times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eth_account import Account

from bme.chain.abi import calldata, returned
from bme.chain.client import ChainClient
from bme.chain.deploy import DeployConfig, Protocol, deploy_protocol
from bme.chain.deploy import ModelListing as PriceBookEntry
from bme.chain.fast_signer import Key
from bme.economics.params import DEFAULT_MIN_JOB_DURATION
from bme.errors import ChainError
from bme.scenario import actions as a
from bme.scenario.accounts import Accounts
from bme.scenario.backend import Backend, OracleReading, ProtocolConfig, ProtocolState, WalletView
from bme.scenario.devnets import GAS_PRICE, ChainKind, Devnet, open_devnet
from bme.scenario.timeline import reference_timeline

MAX_UINT = 2**256 - 1
#: Gas limits per call: generous (unused gas costs nothing on a devnet), so that only reverts fail.
GAS: dict[type, int] = {
    a.PushPrice: 150_000,
    a.SyncStatus: 200_000,
    a.TransferCmp: 150_000,
    a.ApproveCmp: 150_000,
    a.Register: 600_000,
    a.BurnForJob: 400_000,
    a.OpenJob: 300_000,
    a.Expire: 200_000,
    a.Redeem: 400_000,
    a.Claim: 12_000_000,
}
SETTLE_BASE_GAS, SETTLE_GAS_PER_JOB = 200_000, 75_000


class ChainBackend(Backend):
    """The contracts on a fresh devnet of `kind`, deployed with `config`."""

    def __init__(self, config: ProtocolConfig, accounts: Accounts, kind: ChainKind) -> None:
        self.kind = kind
        self.timeline = reference_timeline(config.epoch_length)
        self.devnet: Devnet = open_devnet(kind, [k.address for k in accounts.simulated])
        try:
            self.protocol = self._deploy(config, accounts)
            d = self.protocol.deployment
            self.addresses = {
                "oracle": d.oracle,
                "token": d.token,
                "credit": d.credit,
                "bme": d.bme,
                "escrow": d.escrow,
                "registry": d.registry,
                "emissions": d.emissions,
            }
            self._to = {name: bytes.fromhex(addr[2:]) for name, addr in self.addresses.items()}
            self._check_timeline()
        except Exception:
            self.devnet.close()
            raise
        roles = [accounts.deployer, accounts.relayer, accounts.feeder, accounts.treasury, *accounts.simulated]
        self._keys: dict[str, Key] = {k.address: k for k in roles}
        addresses = list(self._keys)
        self._nonces = dict(zip(addresses, self.devnet.nonces(addresses), strict=True))
        self.treasury = accounts.treasury.address
        self._encoders: dict[type, Callable[[Any], tuple[str, bytes, int]]] = {
            a.PushPrice: lambda x: (
                "oracle",
                calldata("ManualPriceOracle", "pushPrice", x.price, x.confidence, x.updated_at),
                GAS[a.PushPrice],
            ),
            a.SyncStatus: lambda x: ("bme", calldata("BurnMintEquilibrium", "syncStatus"), GAS[a.SyncStatus]),
            a.TransferCmp: lambda x: (
                "token",
                calldata("ComputeToken", "transfer", x.to, x.amount),
                GAS[a.TransferCmp],
            ),
            a.ApproveCmp: lambda x: (
                "token",
                calldata("ComputeToken", "approve", self.addresses[x.spender], MAX_UINT),
                GAS[a.ApproveCmp],
            ),
            a.Register: lambda x: (
                "registry",
                calldata("OperatorRegistry", "register", x.stake, x.endpoint, list(x.models)),
                GAS[a.Register],
            ),
            a.BurnForJob: lambda x: (
                "escrow",
                calldata("JobEscrow", "burnForJob", x.tokens, x.min_credits, x.terms.as_tuple()),
                GAS[a.BurnForJob],
            ),
            a.OpenJob: lambda x: (
                "escrow",
                calldata("JobEscrow", "openJob", x.max_credits, x.terms.as_tuple()),
                GAS[a.OpenJob],
            ),
            a.Settle: lambda x: (
                "escrow",
                calldata(
                    "JobEscrow",
                    "settle",
                    [(s.job_id, s.operator, s.input_tokens, s.output_tokens, s.result_hash) for s in x.items],
                ),
                SETTLE_BASE_GAS + SETTLE_GAS_PER_JOB * len(x.items),
            ),
            a.Expire: lambda x: ("escrow", calldata("JobEscrow", "expire", x.job_id), GAS[a.Expire]),
            a.Redeem: lambda x: (
                "bme",
                calldata("BurnMintEquilibrium", "redeem", x.credits, x.min_tokens),
                GAS[a.Redeem],
            ),
            a.Claim: lambda x: ("emissions", calldata("EmissionSchedule", "claim"), GAS[a.Claim]),
        }

    # -- deployment ---------------------------------------------------------------------------------

    def _deploy(self, config: ProtocolConfig, accounts: Accounts) -> Protocol:
        client = ChainClient(self.devnet.web3(), poll_latency=0.001)
        schedule = config.schedule
        return deploy_protocol(
            client,
            Account.from_key(accounts.deployer.secret),
            DeployConfig(
                epoch_length=config.epoch_length,
                models=[PriceBookEntry(i, name, pin, pout) for i, name, pin, pout in config.models],
                genesis={accounts.treasury.address: config.treasury_supply},
                relayers=[accounts.relayer.address],
                feeders=[accounts.feeder.address],
                emission_segments=schedule.segments,
                emission_hard_cap=schedule.hard_cap,
                min_stake=config.min_stake,
                parameters=config.parameters,
                seed_tokens=config.seed_tokens,
                mint_limit=config.mint_limit,
                emission_limit=config.mint_limit,
                max_job_duration=config.max_job_duration,
                oracle_max_age=config.oracle_max_age,
                oracle_max_step_bps=config.oracle_max_step_bps,
                oracle_step_period=config.oracle_step_period,
                min_job_duration=(
                    None if config.min_job_duration == DEFAULT_MIN_JOB_DURATION else config.min_job_duration
                ),
            ),
        )

    def _check_timeline(self) -> None:
        """The deployment must date the BME core and the escrow as the reference model assumes."""
        tl = self.timeline
        d = self.protocol.deployment
        genesis = self._read([("escrow", "JobEscrow", "epochGenesis", ())])[0][0]
        if (d.deployed_at, genesis) != (tl.window_start, tl.epoch_genesis):
            raise ChainError(
                f"the deployment dated the BME core {d.deployed_at} and the escrow {genesis}, not "
                f"{tl.window_start} and {tl.epoch_genesis} as the replay's timeline assumes "
                "(bme.scenario.timeline): update it to the deployment's order of transactions"
            )
        latest = self.protocol.client.timestamp()
        if latest >= tl.setup_time:
            raise ChainError(
                f"the deployment took until {latest}, past the setup block at {tl.setup_time}: "
                "list fewer models or use longer epochs"
            )

    # -- blocks -------------------------------------------------------------------------------------

    def execute(self, timestamp: int, actions: Sequence[a.Action]) -> list[bool]:
        if not actions:
            return []
        raws: list[bytes] = []
        limits: list[int] = []
        chain_id = self.devnet.chain_id
        for action in actions:
            target, data, gas = self._encoders[type(action)](action)
            key = self._keys[action.sender]
            nonce = self._nonces[action.sender]
            self._nonces[action.sender] = nonce + 1
            raws.append(key.sign_legacy(nonce, GAS_PRICE, gas, self._to[target], 0, data, chain_id))
            limits.append(gas)
        outcomes = self.devnet.execute(timestamp, raws)
        for action, outcome, limit in zip(actions, outcomes, limits, strict=True):
            if not outcome.ok and outcome.gas_used >= limit:
                raise ChainError(f"{type(action).__name__} ran out of gas ({limit}): raise its limit")
        self.transactions += len(raws)
        self.gas_used += sum(o.gas_used for o in outcomes)
        return [o.ok for o in outcomes]

    # -- reads --------------------------------------------------------------------------------------

    def _read(self, calls: Sequence[tuple[str, str, str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        """`(target, contract, function, args)` calls, decoded."""
        data = self.devnet.call_many([(self.addresses[t], calldata(c, f, *args)) for t, c, f, args in calls])
        return [returned(c, f, d) for (_, c, f, _), d in zip(calls, data, strict=True)]

    def read_state(self, chain_epoch: int, operators: Sequence[str]) -> ProtocolState:
        ad = self.addresses
        calls: list[tuple[str, str, str, tuple[Any, ...]]] = [
            ("token", "ComputeToken", "totalSupply", ()),
            ("credit", "ComputeCredit", "totalSupply", ()),
            ("bme", "BurnMintEquilibrium", "remintCredits", ()),
            ("bme", "BurnMintEquilibrium", "outstandingCredits", ()),
            ("bme", "BurnMintEquilibrium", "totalReissued", ()),
            ("bme", "BurnMintEquilibrium", "totalNewIssuance", ()),
            ("bme", "BurnMintEquilibrium", "seedTokens", ()),
            ("bme", "BurnMintEquilibrium", "status", ()),
            ("oracle", "ManualPriceOracle", "latestPrice", ()),
            ("emissions", "EmissionSchedule", "totalReleased", ()),
            ("escrow", "JobEscrow", "epochWork", (chain_epoch,)),
            ("emissions", "EmissionSchedule", "epochEmission", (chain_epoch,)),
            ("token", "ComputeToken", "balanceOf", (ad["registry"],)),
            ("token", "ComputeToken", "balanceOf", (ad["emissions"],)),
            ("token", "ComputeToken", "balanceOf", (self.treasury,)),
            ("registry", "OperatorRegistry", "totalRewardStakeAt", (chain_epoch,)),
        ]
        for o in operators:
            calls.append(("escrow", "JobEscrow", "earningsOf", (o,)))
            calls.append(("emissions", "EmissionSchedule", "claimerOf", (o,)))
            calls.append(("token", "ComputeToken", "balanceOf", (o,)))
        r = self._read(calls)
        price, updated_at, confidence = r[8]
        per_op = r[16:]
        return ProtocolState(
            cmp_supply=r[0][0],
            crd_supply=r[1][0],
            remint_credits=r[2][0],
            outstanding_credits=r[3][0],
            total_reissued=r[4][0],
            total_new_issuance=r[5][0],
            seed_tokens=r[6][0],
            status=r[7][0],
            oracle=OracleReading(price, confidence, updated_at),
            emission_released=r[9][0],
            epoch_work=r[10][0],
            epoch_emission=r[11][0],
            reward_stake=r[15][0],
            staked=r[12][0],
            unclaimed_emission=r[13][0],
            treasury_cmp=r[14][0],
            earnings=tuple(x[0] for x in per_op[0::3]),
            rewards_claimed=tuple(x[1] for x in per_op[1::3]),
            operator_cmp=tuple(x[0] for x in per_op[2::3]),
        )

    def wallets(self, users: Sequence[str], operators: Sequence[str]) -> WalletView:
        calls: list[tuple[str, str, str, tuple[Any, ...]]] = [
            ("oracle", "ManualPriceOracle", "latestPrice", ())
        ]
        for u in users:
            calls.append(("token", "ComputeToken", "balanceOf", (u,)))
            calls.append(("credit", "ComputeCredit", "balanceOf", (u,)))
        calls += [("escrow", "JobEscrow", "earningsOf", (o,)) for o in operators]
        r = self._read(calls)
        price, updated_at, confidence = r[0]
        n = len(users)
        return WalletView(
            OracleReading(price, confidence, updated_at),
            tuple((r[1 + 2 * i][0], r[2 + 2 * i][0]) for i in range(n)),
            tuple(x[0] for x in r[1 + 2 * n :]),
        )

    def close(self) -> None:
        self.devnet.close()

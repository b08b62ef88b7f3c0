"""A replay without a chain: the pure-Python reference model (`bme.economics`) deployed as the contracts are.

Each action calls the model's mirror of the contract function; a `ModelRevert` is the revert the chain would
give. Allowances are not modelled (every approval a replay makes is unlimited), so approvals always succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bme.economics.emission import EmissionModel
from bme.economics.model import ModelRevert, Oracle, ProtocolModel
from bme.economics.registry import RegistryModel
from bme.scenario import actions as a
from bme.scenario.accounts import Accounts
from bme.scenario.backend import Backend, OracleReading, ProtocolConfig, ProtocolState, WalletView
from bme.scenario.timeline import reference_timeline

#: Stand-in addresses of the contracts that hold CMP in the model (the registry's stakes, the schedule's
#: released emission); only their balances matter.
REGISTRY = "0x00000000000000000000000000000000000B0E01"
EMISSIONS = "0x00000000000000000000000000000000000B0E02"


class ModelBackend(Backend):
    """The reference model, at the reference timeline's deployment."""

    def __init__(self, config: ProtocolConfig, accounts: Accounts) -> None:
        self.timeline = reference_timeline(config.epoch_length)
        tl = self.timeline
        self.proto = ProtocolModel(
            now=tl.window_start,
            window_start=tl.window_start,
            epoch_genesis=tl.epoch_genesis,
            epoch_length=config.epoch_length,
            params=config.parameters,
            seed_tokens=config.seed_tokens,
            mint_limit=config.mint_limit,
            emission_limit=config.mint_limit,
            max_job_duration=config.max_job_duration,
            oracle=Oracle(
                max_age=config.oracle_max_age,
                max_step_bps=config.oracle_max_step_bps,
                step_period=config.oracle_step_period,
            ),
            min_job_duration=config.min_job_duration,
        )
        for model_id, _, input_price, output_price in config.models:
            self.proto.models[model_id] = (input_price, output_price, True)
        self.proto.mint_genesis(accounts.treasury.address, config.treasury_supply)
        self.registry = RegistryModel(REGISTRY, min_stake=config.min_stake)
        self.emissions = EmissionModel(EMISSIONS, config.schedule)
        self.treasury = accounts.treasury.address
        self.last_revert = ""
        p, r, e = self.proto, self.registry, self.emissions
        self._dispatch: dict[type, Callable[[Any], object]] = {
            a.PushPrice: lambda x: p.push_price(x.price, x.confidence, x.updated_at),
            a.SyncStatus: lambda x: p.sync_status(),
            a.TransferCmp: lambda x: p.transfer_cmp(x.sender, x.to, x.amount),
            a.ApproveCmp: lambda x: None,
            a.Register: lambda x: r.register(p, x.sender, x.stake, x.endpoint, x.models),
            a.BurnForJob: lambda x: p.burn_for_job(x.sender, x.tokens, x.min_credits, x.terms),
            a.OpenJob: lambda x: p.open_job(x.sender, x.max_credits, x.terms),
            a.Settle: lambda x: p.settle(list(x.items), r),
            a.Expire: lambda x: p.expire(x.job_id),
            a.Redeem: lambda x: p.redeem(x.sender, x.credits, x.min_tokens),
            a.Claim: lambda x: e.claim(p, r, x.sender),
        }

    def execute(self, timestamp: int, actions: Sequence[a.Action]) -> list[bool]:
        if not actions:
            return []
        self.proto.now = timestamp
        dispatch = self._dispatch
        out = []
        for action in actions:
            try:
                dispatch[type(action)](action)
            except ModelRevert as exc:
                self.last_revert = exc.name
                out.append(False)
            else:
                out.append(True)
        self.transactions += len(actions)
        return out

    def read_state(self, chain_epoch: int, operators: Sequence[str]) -> ProtocolState:
        p, e = self.proto, self.emissions
        work = p.epoch_work.get(chain_epoch, 0)
        return ProtocolState(
            cmp_supply=sum(p.cmp.values()),
            crd_supply=sum(p.crd.values()),
            remint_credits=p.remint_credits,
            outstanding_credits=p.outstanding_credits,
            total_reissued=p.total_reissued,
            total_new_issuance=p.total_new_issuance,
            seed_tokens=p.seed_tokens,
            status=int(p.status),
            oracle=self.oracle(),
            emission_released=e.total_released,
            epoch_work=work,
            epoch_emission=e.schedule.emission_at(chain_epoch),
            reward_stake=self.registry.total_reward_stake_at(chain_epoch),
            staked=p.cmp.get(REGISTRY, 0),
            unclaimed_emission=p.cmp.get(EMISSIONS, 0),
            treasury_cmp=p.cmp.get(self.treasury, 0),
            earnings=tuple(p.earnings.get(o, 0) for o in operators),
            rewards_claimed=tuple(e.claimed.get(o, 0) for o in operators),
            operator_cmp=tuple(p.cmp.get(o, 0) for o in operators),
        )

    def oracle(self) -> OracleReading:
        o = self.proto.oracle
        return OracleReading(o.price, o.confidence, o.updated_at)

    def wallets(self, users: Sequence[str], operators: Sequence[str]) -> WalletView:
        cmp, crd, earnings = self.proto.cmp, self.proto.crd, self.proto.earnings
        return WalletView(
            self.oracle(),
            tuple((cmp.get(u, 0), crd.get(u, 0)) for u in users),
            tuple(earnings.get(o, 0) for o in operators),
        )

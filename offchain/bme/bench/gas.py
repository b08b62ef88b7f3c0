"""`bme bench gas`: gas used by the protocol's calls on anvil, beside a plain ERC-20 transfer of CMP."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, Protocol, deploy_protocol
from bme.chain.devnet import Anvil, devnet_keys
from bme.chain.signing import sign_permit

MAX_UINT = 2**256 - 1
BATCH_SIZES = (1, 10, 50)
#: The usage caps every benchmark job commits to: a short prompt's bound and a request's max_tokens.
MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS = 512, 256


def _fresh_accounts(n: int) -> list[LocalAccount]:
    return [Account.from_key(os.urandom(32)) for _ in range(n)]


class _Bench:
    def __init__(
        self,
        client: ChainClient,
        protocol: Protocol,
        funder: LocalAccount,
        relayer: LocalAccount,
        feeder: LocalAccount,
    ) -> None:
        self.c, self.p, self.funder, self.relayer, self.feeder = client, protocol, funder, relayer, feeder
        self.spec = 0

    def next_spec(self) -> bytes:
        self.spec += 1
        return self.spec.to_bytes(32, "big")

    def user(self, cmp: int = 1000 * 10**18) -> LocalAccount:
        """A new account with ETH for gas, `cmp` CMP and an unlimited approval for the BME core."""
        acct = _fresh_accounts(1)[0]
        self.c.send(self.funder, to=acct.address, value=10**18)
        self.c.send(self.funder, self.p.token.functions.transfer(acct.address, cmp))
        self.c.send(acct, self.p.token.functions.approve(self.p.bme.address, MAX_UINT))
        return acct

    def operator(self) -> LocalAccount:
        """A new operator, registered with the minimum stake and serving the benchmark's model."""
        acct = self.user()  # all its CMP goes into the stake
        self.c.send(acct, self.p.token.functions.approve(self.p.registry.address, MAX_UINT))
        endpoint = f"https://{acct.address[2:10].lower()}.example/v1"
        self.c.send(acct, self.p.registry.functions.register(1_000 * 10**18, endpoint, [SMOLLM2.model_id]))
        return acct

    def deadline(self, ahead: int = 3600) -> int:
        return self.c.timestamp() + ahead

    def terms(self, spec: bytes | None = None) -> tuple[int, bytes, int, int, int]:
        """A job's terms (`IJobEscrow.JobTerms`) on the benchmark's model, due in an hour."""
        spec = spec or self.next_spec()
        return (SMOLLM2.model_id, spec, self.deadline(), MAX_INPUT_TOKENS, MAX_OUTPUT_TOKENS)

    def burn_for_job(self, user: LocalAccount, tokens: int = 20 * 10**18) -> tuple[int, int]:
        spec = self.next_spec()
        sent = self.c.send(user, self.p.escrow.functions.burnForJob(tokens, 0, self.terms(spec)))
        return self.p.escrow.functions.jobIdFor(user.address, spec).call(), sent.gas_used

    def refresh_price(self) -> int:
        """The feeder pushes $1.00 observed one second after the head; returns the push's gas."""
        ts = self.c.timestamp() + 1
        self.c.w3.provider.make_request("evm_mine", [ts])  # type: ignore[arg-type]
        return self.c.send(self.feeder, self.p.oracle.functions.pushPrice(10**18, 0, ts)).gas_used


def _settle_batch(b: _Bench, payers: list[LocalAccount], *operators: str) -> int:
    """Settles one job of each payer, the operators taking consecutive runs of equal length."""
    jobs = [b.burn_for_job(u)[0] for u in payers]
    b.refresh_price()
    run = -(-len(jobs) // len(operators))
    items = [(j, operators[i // run], 200, 64, b"\x11" * 32) for i, j in enumerate(jobs)]
    return b.c.send(b.relayer, b.p.escrow.functions.settle(items)).gas_used


def _next_epoch(b: _Bench) -> None:
    """Moves the chain to the start of the next escrow epoch, with a fresh price."""
    escrow = b.p.escrow.functions
    genesis, length = escrow.epochGenesis().call(), escrow.epochLength().call()
    now = b.c.timestamp()
    start = genesis + ((now - genesis) // length + 1) * length
    b.c.w3.provider.make_request("evm_setNextBlockTimestamp", [start])  # type: ignore[arg-type]
    b.c.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    b.refresh_price()


def _operator_figures(b: _Bench) -> dict[str, int]:
    """Claims over 1, 7 and 30 epochs, and a redemption, by a staked operator.

    Steady state: two staked operators serve a job in every epoch for about 40 epochs; the operator has
    claimed before. A claim mints its rewards through the BME core after reading the registry's stake
    checkpoints. (Where the schedule has a `release`, as it had while rewards followed work, each finished
    epoch is released as it ends, reported as `release_1_epoch`; a claim of released epochs is a transfer.)
    """
    c, p = b.c, b.p
    out: dict[str, int] = {}
    operator, other = b.user(5_000 * 10**18), b.user(5_000 * 10**18)
    models = [SMOLLM2.model_id]
    for acct in (operator, other):
        c.send(acct, p.token.functions.approve(p.registry.address, MAX_UINT))
    c.send(
        operator, p.registry.functions.register(1_000 * 10**18, "https://operator.example:8090/v1", models)
    )
    c.send(other, p.registry.functions.register(1_000 * 10**18, "https://other.example/v1", models))
    first = p.escrow.functions.currentEpoch().call() + 1  # the first epoch its stake is rewardable in
    names = {f.get("name") for f in p.emissions.abi if f.get("type") == "function"}
    releasing = "release" in names
    delay = p.emissions.functions.claimDelayEpochs().call() if "claimDelayEpochs" in names else 0
    payers = [b.user() for _ in range(4)]
    released: list[int] = []
    last = first + 38  # the last epoch claimed below: after 1 (the first claim), 1, 7 and 30 epochs
    while p.escrow.functions.currentEpoch().call() <= last + delay:
        # Both operators serve a job in every epoch.
        _settle_batch(b, payers[:2], operator.address)
        _settle_batch(b, payers[2:], other.address)
        _next_epoch(b)
        if releasing:
            released.append(c.send(b.relayer, p.emissions.functions.release(1)).gas_used)
    if releasing:
        out["release_1_epoch"] = released[-1]
    through = p.emissions.functions.claimThrough
    out["claim_first_1_epoch"] = c.send(operator, through(first)).gas_used
    out["claim_1_epoch"] = c.send(operator, through(first + 1)).gas_used
    out["claim_7_epochs"] = c.send(operator, through(first + 8)).gas_used
    out["claim_30_epochs"] = c.send(operator, through(first + 38)).gas_used
    # The operator redeems its job earnings (CRD) for CMP: the other minted reward, into a balance it holds.
    b.refresh_price()
    earned = p.escrow.functions.earningsOf(operator.address).call()
    out["redeem_by_operator_holding_cmp"] = c.send(operator, p.bme.functions.redeem(earned, 0)).gas_used
    return out


def measure(progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Deploys on a fresh anvil and measures every call; returns the figures."""
    keys = devnet_keys(3)
    deployer, funder, relayer = (Account.from_key(k) for k in keys)
    with Anvil() as anvil:
        c = ChainClient.connect(anvil.url)
        p = deploy_protocol(
            c,
            deployer,
            DeployConfig(
                genesis={funder.address: 10**27},
                relayers=[relayer.address],
                timelock_delay=0,
                # Room for a claim of 30 epochs of half the default emission in one call (the default limit,
                # 5 epochs' emission per day, would have it claimed in parts with `claimThrough`): emissions'
                # window, and redemptions' where the two share one.
                mint_limit=100_000_000 * 10**18,
                emission_limit=100_000_000 * 10**18,
            ),
        )
        b = _Bench(c, p, funder, relayer, deployer)
        out: dict[str, Any] = {"chain": "anvil", "unit": "gas"}

        progress("ERC-20 transfers")
        holder, other = b.user(), b.user()
        out["erc20_transfer_to_new_holder"] = c.send(
            holder, p.token.functions.transfer(_fresh_accounts(1)[0].address, 10**18)
        ).gas_used
        out["erc20_transfer_to_existing_holder"] = c.send(
            holder, p.token.functions.transfer(other.address, 10**18)
        ).gas_used

        progress("register")
        # The registry's first stake: its CMP balance, the operator's slots and its model bitmap all new.
        first = b.user(5_000 * 10**18)
        c.send(first, p.token.functions.approve(p.registry.address, MAX_UINT))
        endpoint = "https://operator.example:8090/v1"
        out["register"] = c.send(
            first, p.registry.functions.register(1_000 * 10**18, endpoint, [SMOLLM2.model_id])
        ).gas_used

        progress("pushPrice, burnForJob, openJob, permit")
        out["pushPrice"] = b.refresh_price()  # a price already set (at deployment) pushed again
        b.burn_for_job(holder)  # first job warms nothing but the payer's allowance path
        out["burnForJob"] = b.burn_for_job(holder)[1]
        permit_user = _fresh_accounts(1)[0]
        c.send(funder, to=permit_user.address, value=10**18)
        c.send(funder, p.token.functions.transfer(permit_user.address, 100 * 10**18))
        deadline = b.deadline()
        v, r, s = sign_permit(p.token, permit_user, p.bme.address, 20 * 10**18, deadline, c.chain_id)
        out["burnForJobWithPermit"] = c.send(
            permit_user,
            p.escrow.functions.burnForJobWithPermit(20 * 10**18, 0, b.terms(), deadline, v, r, s),
        ).gas_used
        c.send(holder, p.bme.functions.burn(100 * 10**18, 0))
        out["burn"] = c.send(holder, p.bme.functions.burn(100 * 10**18, 0)).gas_used
        out["openJob"] = c.send(holder, p.escrow.functions.openJob(5 * 10**6, b.terms())).gas_used

        progress("settle in batches")
        operators = [b.operator().address for _ in range(4)]
        operator = operators[0]
        for n in BATCH_SIZES:
            # Payers whose credits all went into their job: the refund creates their CRD balance.
            gas = _settle_batch(b, [b.user() for _ in range(n)], operator)
            out[f"settle_per_job_batch_{n}"] = gas // n
        # 100 jobs in runs of 25 for each of 4 operators: the registry is asked once per run.
        out["settle_per_job_batch_100_4_operators"] = (
            _settle_batch(b, [b.user() for _ in range(100)], *operators) // 100
        )
        returning = [b.user() for _ in range(50)]
        for u in returning:
            c.send(u, p.bme.functions.burn(20 * 10**18, 0))  # they already hold CRD
        b.refresh_price()
        out["settle_per_job_batch_50_returning_payers"] = _settle_batch(b, returning, operator) // 50

        progress("expire and redeem")
        job, _ = b.burn_for_job(holder)
        c.w3.provider.make_request("evm_increaseTime", [4000])  # type: ignore[arg-type]
        c.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        out["expire"] = c.send(holder, p.escrow.functions.expire(job)).gas_used
        b.refresh_price()
        op_acct = b.operator()
        _settle_batch(b, [b.user() for _ in range(2)], op_acct.address)
        earned = p.escrow.functions.earningsOf(op_acct.address).call()
        b.refresh_price()
        out["redeem"] = c.send(op_acct, p.bme.functions.redeem(earned // 2, 0)).gas_used

        progress("operators: emissions, claims")
        out.update(_operator_figures(b))

        t = out["erc20_transfer_to_new_holder"]
        out["ratios"] = {
            "burnForJob_over_transfer_to_new_holder": round(out["burnForJob"] / t, 3),
            "burnForJob_over_transfer_to_existing_holder": round(
                out["burnForJob"] / out["erc20_transfer_to_existing_holder"], 3
            ),
        }
        out["targets"] = {
            "burnForJob_at_most_1.5x_transfer": out["burnForJob"] <= 1.5 * t,
            "settle_per_job_batch_50_at_most_30000": out["settle_per_job_batch_50"] <= 30_000,
            "claim_7_epochs_at_most_80000": out["claim_7_epochs"] <= 80_000,
        }
        return out

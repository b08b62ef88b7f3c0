"""`bme demo`: a local devnet, the protocol deployed on it, and one paid job from burn to redemption."""

from __future__ import annotations

import json
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from rich.console import Console
from rich.table import Table
from web3.logs import DISCARD

from bme.chain.client import ChainClient
from bme.chain.deploy import SMOLLM2, DeployConfig, Protocol, deploy_protocol
from bme.chain.devnet import Anvil, devnet_keys

CMP, CRD = 10**18, 10**6
STATUS_NAMES = ("Healthy", "Warning", "HaltCR", "HaltOracle")


@dataclass
class Roles:
    deployer: LocalAccount
    user: LocalAccount
    relayer: LocalAccount
    operator: LocalAccount


def _cmp(x: int) -> str:
    return f"{x / CMP:,.6f} CMP"


def _crd(x: int) -> str:
    return f"{x / CRD:,.6f} CRD"


def _figures(p: Protocol) -> dict[str, str]:
    f = p.bme.functions
    return {
        "CMP supply": _cmp(p.token.functions.totalSupply().call()),
        "remint credits": _cmp(f.remintCredits().call()),
        "outstanding credits": _crd(f.outstandingCredits().call()),
        "collateral ratio": f"{f.collateralRatioBps().call() / 100:,.2f} %"
        if f.outstandingCredits().call()
        else "n/a (nothing outstanding)",
        "status": STATUS_NAMES[f.status().call()],
    }


def run_demo(console: Console, input_tokens: int, output_tokens: int) -> None:
    """Runs the demo, printing each step. Token counts are inputs until the operator node measures them."""
    deployer, user, relayer, operator = (Account.from_key(k) for k in devnet_keys(4))
    with Anvil() as anvil:
        console.rule("[bold]1. A local devnet")
        console.print(f"anvil at {anvil.url}, chain id {anvil.chain_id}")
        client = ChainClient.connect(anvil.url)

        console.rule("[bold]2. Deploy and hand governance to the timelock")
        p = deploy_protocol(
            client,
            deployer,
            DeployConfig(genesis={user.address: 1_000 * CMP}, relayers=[relayer.address]),
        )
        d = p.deployment
        table = Table(show_header=False)
        for name in ("token", "credit", "oracle", "bme", "escrow", "timelock"):
            table.add_row(name, getattr(d, name))
        console.print(table)
        console.print(
            f"oracle price: $1.00 per CMP; model {SMOLLM2.model_id} = {SMOLLM2.name}, "
            f"${SMOLLM2.input_price_per_million / CRD:.2f} / ${SMOLLM2.output_price_per_million / CRD:.2f}"
            " per million input / output tokens"
        )

        console.rule("[bold]3. The user burns CMP for a job")
        request = {
            "model": SMOLLM2.name,
            "messages": [{"role": "user", "content": "What is a burn-mint equilibrium?"}],
            "max_tokens": 64,
            "salt": "demo-1",
        }
        spec_hash = keccak(text=json.dumps(request, sort_keys=True, separators=(",", ":")))
        reserve = 10 * CRD + 50_000  # the minimum mint is 10 CRD; the unused part is refunded at settlement
        tokens = p.bme.functions.quoteTokensForCredits(reserve).call()
        client.send(user, p.token.functions.approve(p.bme.address, tokens))
        deadline = client.timestamp() + 3600
        sent = client.send(
            user, p.escrow.functions.burnForJob(tokens, reserve, SMOLLM2.model_id, spec_hash, deadline)
        )
        job_id = p.escrow.functions.jobIdFor(user.address, spec_hash).call()
        opened = p.escrow.events.JobOpened().process_receipt(sent.receipt, errors=DISCARD)[0]["args"]
        console.print(f"burned {_cmp(tokens)} for {_crd(opened['maxCredits'])} reserved for job {job_id:#x}")
        console.print(
            f"request commitment (specHash) {spec_hash.hex()}; tx {sent.tx_hash}, gas {sent.gas_used:,}"
        )

        console.rule("[bold]4. The relayer settles the job")
        answer = "(answer produced off-chain by the operator node)"
        result_hash = keccak(text=answer)
        sent = client.send(
            relayer,
            p.escrow.functions.settle([(job_id, operator.address, input_tokens, output_tokens, result_hash)]),
        )
        settled = p.escrow.events.JobSettled().process_receipt(sent.receipt, errors=DISCARD)[0]["args"]
        console.print(
            f"{input_tokens} input + {output_tokens} output tokens: charged {_crd(settled['charge'])}, "
            f"refunded {_crd(settled['refund'])} to the user; tx {sent.tx_hash}, gas {sent.gas_used:,}"
        )
        console.print(f"operator earnings: {_crd(p.escrow.functions.earningsOf(operator.address).call())}")

        console.rule("[bold]5. The operator redeems its earnings for CMP")
        client.send(deployer, to=operator.address, value=0)  # keeps the block clock moving
        earned = p.escrow.functions.earningsOf(operator.address).call()
        sent = client.send(operator, p.bme.functions.redeem(earned, 0))
        red = p.bme.events.Redeemed().process_receipt(sent.receipt, errors=DISCARD)[0]["args"]
        console.print(
            f"redeemed {_crd(red['credits'])} for {_cmp(red['tokensMinted'])}: "
            f"{_cmp(red['reissued'])} re-issued against earlier burns, {_cmp(red['newlyIssued'])} new"
        )

        console.rule("[bold]6. Where the protocol stands")
        table = Table(show_header=False)
        for k, v in _figures(p).items():
            table.add_row(k, v)
        console.print(table)
        console.print("[green]demo complete[/green]: anvil stopped.")

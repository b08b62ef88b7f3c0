"""`bme demo`: the whole protocol on a local devnet, with real processes, told step by step.

anvil, the contracts, an operator node serving the embedded model and a relayer all start here; a user wallet
then burns CMP for a real answer, the settlement shows on-chain, time moves past the challenge window of the
operator's first staked epoch, and the operator claims its minted reward and redeems its earnings. Everything
stops at the end, also on failure.

The stack watches its processes: if the node, the relayer or anvil dies, the demo stops at once with one line
naming the process and how it ended (the end of its log is printed above it, and the logs are kept).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from web3.logs import DISCARD

from bme import devnet_ops
from bme.chain.deploy import SMOLLM2
from bme.children import Death, ProcessDied
from bme.cli.ask import run_ask
from bme.stack import LocalStack, StackConfig
from bme.user.jobs import JobsClient

CMP, CRD = 10**18, 10**6
PROMPT = "In one sentence, what does a burn-mint equilibrium do?"


def _cmp(x: int) -> str:
    return f"{x / CMP:,.6f} CMP"


def _crd(x: int) -> str:
    return f"{x / CRD:,.6f} CRD"


def _figures_table(figures: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    cr = figures["collateral_ratio_bps"]
    rows = {
        "CMP supply": _cmp(figures["cmp_supply"]),
        "CMP burned for credits": _cmp(figures["cmp_burned"]),
        "CMP re-issued": _cmp(figures["cmp_reissued"]),
        "CMP newly issued": _cmp(figures["cmp_newly_issued"]),
        "CMP emitted": _cmp(figures["cmp_emitted"]),
        "remint credits": _cmp(figures["remint_credits"]),
        "outstanding credits": _crd(figures["outstanding_credits"]),
        "collateral ratio": "n/a (nothing outstanding)" if cr is None else f"{cr / 100:,.2f} %",
        "status": figures["status"],
        "epoch": str(figures["current_epoch"]),
    }
    for k, v in rows.items():
        table.add_row(k, v)
    return table


def run_demo(console: Console, max_tokens: int = 48, work_dir: Path | None = None) -> dict[str, Any]:
    """Runs the demo, printing each step; returns the figures it printed (for tests).

    Raises `ProcessDied` (one line) as soon as a process of the stack dies; its log's tail goes to stderr.
    """
    started = time.monotonic()
    err = Console(stderr=True, highlight=False)

    def report(death: Death) -> None:
        err.print(death.report(), markup=False, soft_wrap=True)

    work = work_dir or Path(tempfile.mkdtemp(prefix="bme-demo-"))
    config = StackConfig(operators=1, users=1, epoch_length=3_600, work_dir=work, on_death=report)
    stack = LocalStack(config)
    keep = work_dir is not None
    try:
        with stack:
            return _steps(console, stack, max_tokens, started)
    except Exception as exc:
        death = stack.death  # the stack records (and reports) a death whichever thread noticed it
        if death is None:
            raise
        keep = True
        err.print(f"logs kept in {work}", soft_wrap=True)
        if isinstance(exc, ProcessDied):
            raise
        raise ProcessDied(death) from None
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _steps(console: Console, stack: LocalStack, max_tokens: int, started: float) -> dict[str, Any]:
    p, d = stack.protocol, stack.protocol.deployment
    operator, user = stack.operators[0], stack.users[0]

    console.rule("[bold]1. A devnet with the protocol deployed")
    console.print(f"anvil at {stack.anvil.url}, chain id {d.chain_id}; governance handed to the timelock")
    table = Table(show_header=False, box=None, padding=(0, 2))
    for name in ("token", "credit", "oracle", "bme", "escrow", "registry", "emissions", "timelock"):
        table.add_row(name, getattr(d, name))
    console.print(table)
    epoch_len = p.escrow.functions.epochLength().call()
    console.print(
        f"price book: model {SMOLLM2.model_id} = {SMOLLM2.name} at "
        f"${SMOLLM2.input_price_per_million / CRD:.2f} / ${SMOLLM2.output_price_per_million / CRD:.2f} "
        "per million input / output tokens; oracle $1.00 per CMP; "
        f"epochs of {epoch_len} s, {_cmp(p.emissions.functions.epochEmission(0).call())} emitted per epoch",
        soft_wrap=True,
    )

    console.rule("[bold]2. An operator node and a relayer, as real processes")
    with console.status("starting the operator node (embedded SmolLM2-135M model) and the relayer"):
        node = stack.start_node(0, wait=False)
        relayer = stack.start_relayer(extra_env={"BME_RELAYER_BATCH_AGE_S": "0.2"}, wait=False)
        stack.node_ready(0, node)
        stack.relayer_ready(relayer)
    console.print(f"operator {operator.address} staked 1,000 CMP and serves model 1 at {node.url}")
    console.print(f"relayer {stack.relayer_account.address}: API at {relayer.url} (OpenAPI at /docs)")

    console.rule("[bold]3. A user burns CMP for an answer")
    cmp_before = p.token.functions.balanceOf(user.address).call()
    console.print(f"user wallet {user.address} holds {_cmp(cmp_before)}; asks: [italic]{PROMPT}[/italic]")
    stack.push_price()
    client = JobsClient(p, user, relayer.url)
    try:
        result = run_ask(client, str(SMOLLM2.model_id), PROMPT, max_tokens=max_tokens, out=console)
    finally:
        client.close()
    cmp_after = p.token.functions.balanceOf(user.address).call()
    console.print(
        f"user: {_cmp(cmp_before - cmp_after)} burned; credit balance now "
        f"{_crd(p.credit.functions.balanceOf(user.address).call())} (the unused reservation, for later jobs)"
    )

    console.rule("[bold]4. The settlement on-chain")
    earned = p.escrow.functions.earningsOf(operator.address).call()
    epoch = p.escrow.functions.currentEpoch().call()
    console.print(
        f"operator earnings {_crd(earned)}; work recorded in epoch {epoch}: "
        f"{_crd(p.escrow.functions.workOf(operator.address, epoch).call())}"
    )
    figures = httpx.get(f"{relayer.url}/v1/protocol", timeout=30).json()
    console.print(_figures_table(figures))

    console.rule("[bold]5. The challenge window passes; the operator claims its minted reward")
    # Stake earns from the epoch after its registration; an epoch's rewards wait `claimDelayEpochs` more
    # epochs (the challenge window, in which a slash can still reach them).
    rewarded = p.registry.functions.firstEpochOf(operator.address).call() + 1
    claimable = rewarded + p.emissions.functions.claimDelayEpochs().call() + 1
    escrow = p.escrow.functions
    start = escrow.epochGenesis().call() + claimable * escrow.epochLength().call()
    _before, now = devnet_ops.advance(stack.client, to=start)
    stack.push_price()
    console.print(f"chain time moved to {now}: epoch {rewarded}, its first staked epoch, is past its window")
    sent = stack.client.send(operator, p.emissions.functions.claim())
    claimed = p.emissions.events.RewardsClaimed().process_receipt(sent.receipt, errors=DISCARD)
    reward = sum(int(ev["args"]["tokens"]) for ev in claimed)
    through = max((int(ev["args"]["toEpoch"]) for ev in claimed), default=rewarded)
    console.print(
        f"claimed {_cmp(reward)} of emission for its stake through epoch {through} "
        f"(tx {sent.tx_hash}, gas {sent.gas_used:,})"
    )

    console.rule("[bold]6. The operator redeems its earnings for CMP")
    sent = stack.client.send(operator, p.bme.functions.redeem(earned, 0))
    red = p.bme.events.Redeemed().process_receipt(sent.receipt, errors=DISCARD)[0]["args"]
    console.print(
        f"redeemed {_crd(red['credits'])} for {_cmp(red['tokensMinted'])}: {_cmp(red['reissued'])} re-issued "
        f"against earlier burns, {_cmp(red['newlyIssued'])} new (tx {sent.tx_hash}, gas {sent.gas_used:,})"
    )
    final = httpx.get(f"{relayer.url}/v1/protocol", timeout=30).json()
    console.print(_figures_table(final))
    console.print(
        f"[green]demo complete[/green] in {time.monotonic() - started:.1f} s: "
        "stopping the relayer, the node and anvil"
    )
    return {"job": result, "reward": reward, "redeemed": dict(red), "figures": final}

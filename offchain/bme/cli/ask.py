"""`bme ask`, `bme jobs`, `bme refund`: pay for an answer from a wallet, list the wallet's jobs, reclaim one.

`bme ask` runs five steps and names the one that fails: quote (a burn that would revert now, e.g. on a stale
oracle, fails here; the payment is then simulated, so a revert or too little ETH for gas fails the pay step
before the request is revealed), reveal (the request goes to the relayer, signed by the
paying address), pay (one transaction: permit, burn, open the job), wait (progress until the job settles),
verify (the result hash recorded on-chain at settlement is the hash of the answer received). A payment is
never lost: a job that is not settled by its deadline can be refunded whole with `bme refund JOB`, where JOB
is a job id or its first digits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from web3.logs import DISCARD

from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    open_protocol,
)
from bme.cli.quote import read_prompt
from bme.commitment import job_hex
from bme.display import cmp, crd, deadline
from bme.errors import ConfigError
from bme.job_states import JobState
from bme.user.jobs import JobsClient, StepFailed
from bme.user.wallets import WalletOpt, resolve_wallet

console = Console(highlight=False)

RelayerOpt = Annotated[
    str, typer.Option("--relayer", envvar="BME_RELAYER_URL", help="The relayer's API [BME_RELAYER_URL].")
]
DEFAULT_RELAYER = "http://127.0.0.1:8088"
#: A width no table reaches: to measure a table's natural width, unconstrained by the terminal's.
UNBOUNDED_WIDTH = 10_000


def _client(wallet: str, rpc_url: str, deployment: Path, relayer: str) -> JobsClient:
    chosen = resolve_wallet(wallet)
    account = chosen.unlock()
    return JobsClient(open_protocol(rpc_url, deployment), account, relayer, wallet=chosen.name)


def ask(
    prompt: Annotated[
        str | None, typer.Argument(help="The prompt; '-' or nothing reads standard input.")
    ] = None,
    model: Annotated[
        str, typer.Option("--model", "-m", help="A model of the price book, by name or id.")
    ] = "1",
    max_tokens: Annotated[int, typer.Option(help="Most tokens the answer may have.")] = 128,
    prompt_file: Annotated[Path | None, typer.Option(help="Read the prompt from this file.")] = None,
    system: Annotated[str | None, typer.Option(help="A system message before the prompt.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the settled answer.")] = 600.0,
    wallet: WalletOpt = "default",
    relayer: RelayerOpt = DEFAULT_RELAYER,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Burn CMP for a job from a wallet, get the model's answer, and verify it against the chain."""
    text = _read_prompt(prompt, prompt_file)
    if max_tokens < 1:
        raise ConfigError("--max-tokens must be at least 1")
    with chain_errors(rpc_url):
        client = _client(wallet, rpc_url, deployment, relayer)
        try:
            run_ask(client, model, text, max_tokens=max_tokens, system=system, timeout=timeout)
        finally:
            client.close()


def run_ask(
    client: JobsClient,
    model: str,
    prompt: str,
    *,
    max_tokens: int,
    system: str | None = None,
    timeout: float = 600.0,
    out: Console = console,
) -> dict[str, Any]:
    """The steps of `bme ask`, printed to `out`; returns the settled job as the relayer reports it."""
    try:
        job = client.prepare(model, prompt, max_tokens=max_tokens, system=system)
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed("quote", str(exc)) from None
    q = job.quote
    if q.problems:  # the burn would revert: say why before the request leaves the machine
        raise StepFailed("quote", f"a burn now would fail: {'; '.join(q.problems)}")
    client.check_pay(job)  # a revert or too little ETH for gas, named before anything is revealed or sent
    out.print(f"job {job.job_hex}", soft_wrap=True)
    out.print(
        f"  quote: at most {crd(q.max_credits)} for {q.prompt_tokens} prompt + {max_tokens} "
        f"answer tokens of {q.model_name}; burning {cmp(q.burn_cmp)} for {crd(q.burn_credits)}",
        soft_wrap=True,
    )
    client.reveal(job)
    out.print("  reveal: the relayer has the request, signed by the payer")
    sent = client.pay(job)
    out.print(
        f"  pay: burned {cmp(q.burn_cmp)} in transaction {sent.tx_hash} (gas {sent.gas_used:,})",
        soft_wrap=True,
    )
    with out.status("  waiting for the relayer") as status:
        result = client.wait(
            job.job_id,
            timeout=timeout,
            on_state=lambda b: status.update(f"  waiting: job {b['state'].lower()}"),
        )
    if result["state"] != JobState.SETTLED:
        raise StepFailed("wait", ended_unsettled(result, job.job_hex, crd(q.burn_credits)))
    answer = str(result["answer"])
    settled = client.verify(job.job_id, answer)
    out.print("")
    out.print(answer, markup=False, highlight=False)
    out.print("")
    out.print(
        f"  charged {crd(int(settled['charge']))} for {settled['inputTokens']} + "
        f"{settled['outputTokens']} tokens; refunded {crd(int(settled['refund']))} to the wallet",
        soft_wrap=True,
    )
    out.print(
        f"  settled in transaction {settled['tx_hash']} by operator {settled['operator']}", soft_wrap=True
    )
    out.print(
        f"  verified: keccak256(answer) = 0x{bytes(settled['resultHash']).hex()} as recorded on-chain",
        soft_wrap=True,
    )
    return result


def ended_unsettled(result: dict[str, Any], job_hex: str, reserved: str) -> str:
    """What a payer is told of a job that ended without a settlement: why, that no answer is handed out for
    it, and how the reservation comes back."""
    reason = str(result.get("reason") or "no reason given").rstrip(".")
    withheld = (
        " The relayer withholds the answer of an unsettled job." if result.get("answer_withheld") else ""
    )
    return (
        f"the job ended {result['state']}: {reason}.{withheld} After its deadline, `bme refund {job_hex}` "
        f"returns its {reserved} to the wallet"
    )


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    if prompt is not None and prompt_file is not None:
        raise ConfigError("give a prompt or --prompt-file, not both")
    if prompt_file is not None:
        text = read_prompt(None, prompt_file)
    elif prompt is None or prompt == "-":
        if sys.stdin.isatty():
            raise ConfigError("give a prompt, --prompt-file, or pipe the prompt on standard input")
        text = sys.stdin.read()
    else:
        text = prompt
    if not text.strip():
        raise ConfigError("the prompt is empty")
    return text


def jobs(
    wallet: WalletOpt = "default",
    relayer: RelayerOpt = DEFAULT_RELAYER,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """The wallet's jobs: full ids, on-chain status and reservation, deadlines, the relayer's state."""
    with chain_errors(rpc_url):
        client = _client(wallet, rpc_url, deployment, relayer)
        try:
            table = jobs_table(client)
        finally:
            client.close()
    print_whole(console, table)


def jobs_table(client: JobsClient) -> Table:
    """The wallet's jobs as a table whose job ids are whole (never wrapped or cut: they are copied into
    `bme refund`), with deadlines as local date-times and how far they are from the chain's time."""
    table = Table(title=f"jobs of {client.account.address}")
    table.add_column("job", no_wrap=True, overflow="ignore", min_width=66)
    for name in ("model", "reserved", "deadline", "on-chain", "relayer"):
        table.add_column(name, no_wrap=True)
    now = client.protocol.client.next_timestamp()
    for j in client.jobs():
        try:
            state = str(client.status(int(j["job_id"], 16))["state"]).lower()
        except StepFailed:
            state = "unknown"
        status = j["status"]
        if status == "open" and j["deadline"] < now:
            status = "open, refundable"
        table.add_row(
            j["job_id"],
            str(j["model_id"]),
            crd(j["max_credits"]),
            deadline(j["deadline"], now),
            status,
            state,
        )
    return table


def print_whole(out: Console, table: Table) -> None:
    """Prints `table` at its natural width even when the terminal is narrower (the terminal wraps the lines;
    Rich would otherwise squeeze the columns and break the job ids)."""
    natural = Measurement.get(out, out.options.update_width(UNBOUNDED_WIDTH), table).maximum
    if natural <= out.width:
        out.print(table)
        return
    # `Console.print(width=...)` never exceeds the console's width: a console as wide as the table does.
    wide = Console(file=out.file, width=natural, highlight=False, force_terminal=out.is_terminal)
    wide.print(table, crop=False)


def refund(
    job: Annotated[str, typer.Argument(help="The job id (0x...), or its first digits if they are unique.")],
    wallet: WalletOpt = "default",
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Reclaim an expired job: its whole reservation returns to the wallet as CRD."""
    with chain_errors(rpc_url):
        client = _client(wallet, rpc_url, deployment, DEFAULT_RELAYER)
        try:
            job_id = client.find_job(job)
            sent = client.refund(job_id)
        finally:
            client.close()
        events = client.protocol.escrow.events.JobExpired().process_receipt(sent.receipt, errors=DISCARD)
        amount = int(events[0]["args"]["refund"]) if events else 0
    console.print(
        f"job {job_hex(job_id)} expired: {crd(amount)} back to the wallet in {sent.tx_hash}", soft_wrap=True
    )

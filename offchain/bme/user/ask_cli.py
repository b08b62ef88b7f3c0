"""`bme ask`, `bme jobs`, `bme refund`: pay for an answer from a wallet, list the wallet's jobs, reclaim one.

`bme ask` runs five steps and names the one that fails: quote, reveal (the request goes to the relayer,
signed by the paying address), pay (one transaction: permit, burn, open the job), wait (progress until the
job settles), verify (the result hash recorded on-chain at settlement is the hash of the answer received). A
payment is never lost: a job that is not settled by its deadline can be refunded whole with `bme refund JOB`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    fmt,
    open_protocol,
)
from bme.commitment import job_hex
from bme.errors import ConfigError
from bme.user.jobs import JobsClient, StepFailed
from bme.user.quote_cli import read_prompt
from bme.user.wallets import WalletOpt, resolve_wallet

console = Console(highlight=False)

RelayerOpt = Annotated[
    str, typer.Option("--relayer", envvar="BME_RELAYER_URL", help="The relayer's API [BME_RELAYER_URL].")
]
DEFAULT_RELAYER = "http://127.0.0.1:8088"


def _client(wallet: str, rpc_url: str, deployment: Path, relayer: str) -> JobsClient:
    account = resolve_wallet(wallet).unlock()
    return JobsClient(open_protocol(rpc_url, deployment), account, relayer)


def _parse_job(job: str) -> int:
    try:
        value = int(job, 16)
    except ValueError:
        raise ConfigError(f"{job!r} is not a job id (0x and 64 hex digits)") from None
    if not job.startswith("0x") or not 0 < value < 2**256:
        raise ConfigError(f"{job!r} is not a job id (0x and 64 hex digits)")
    return value


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
    out.print(f"job {job.job_hex}")
    out.print(
        f"  quote: at most {fmt(q.max_credits, 6, 'CRD')} for {q.prompt_tokens} prompt + {max_tokens} "
        f"answer tokens of {q.model_name}; "
        f"burning {fmt(q.burn_cmp, 18, 'CMP')} for {fmt(q.burn_credits, 6, 'CRD')}",
        soft_wrap=True,
    )
    client.reveal(job)
    out.print("  reveal: the relayer has the request, signed by the payer")
    sent = client.pay(job)
    out.print(
        f"  pay: burned {fmt(q.burn_cmp, 18, 'CMP')} in transaction {sent.tx_hash} (gas {sent.gas_used:,})"
    )
    with out.status("  waiting for the relayer") as status:
        result = client.wait(
            job.job_id,
            timeout=timeout,
            on_state=lambda b: status.update(f"  waiting: job {b['state'].lower()}"),
        )
    if result["state"] != "SETTLED":
        raise StepFailed(
            "wait",
            f"the job ended {result['state']}: {result.get('reason')}. After its deadline, "
            f"`bme refund {job.job_hex}` returns its {fmt(q.burn_credits, 6, 'CRD')} to the wallet",
        )
    answer = str(result["answer"])
    settled = client.verify(job.job_id, answer)
    out.print("")
    out.print(answer, markup=False, highlight=False)
    out.print("")
    out.print(
        f"  charged {fmt(int(settled['charge']), 6, 'CRD')} for {settled['inputTokens']} + "
        f"{settled['outputTokens']} tokens; refunded {fmt(int(settled['refund']), 6, 'CRD')} to the wallet",
        soft_wrap=True,
    )
    out.print(
        f"  settled in transaction {settled['tx_hash']} by operator {settled['operator']}", soft_wrap=True
    )
    out.print(f"  verified: keccak256(answer) = 0x{bytes(settled['resultHash']).hex()} as recorded on-chain")
    return result


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
    """The wallet's jobs: on-chain status and reservation, and the relayer's state when it answers."""
    with chain_errors(rpc_url):
        client = _client(wallet, rpc_url, deployment, relayer)
        table = Table("job", "model", "reserved", "deadline", "on-chain", "relayer")
        now = client.protocol.client.timestamp()
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
                fmt(j["max_credits"], 6, "CRD"),
                str(j["deadline"]),
                status,
                state,
            )
        client.close()
    console.print(table)


def refund(
    job: Annotated[str, typer.Argument(help="The job id (0x...).")],
    wallet: WalletOpt = "default",
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """Reclaim an expired job: its whole reservation returns to the wallet as CRD."""
    job_id = _parse_job(job)
    with chain_errors(rpc_url):
        client = _client(wallet, rpc_url, deployment, DEFAULT_RELAYER)
        sent = client.refund(job_id)
        ev = client.protocol.escrow.events.JobExpired().process_receipt(sent.receipt)
        amount = int(ev[0]["args"]["refund"]) if ev else 0
        client.close()
    console.print(
        f"job {job_hex(job_id)} expired: {fmt(amount, 6, 'CRD')} back to the wallet in {sent.tx_hash}"
    )

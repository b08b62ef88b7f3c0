"""`bme quote`: what a job would cost now, in USD credits and in CMP, with the burn's pricing spelled out."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bme.cli.common import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_RPC,
    DeploymentOpt,
    RpcOpt,
    chain_errors,
    open_protocol,
)
from bme.display import cmp, crd, usd
from bme.economics.quote import EXPECTED_OUTPUT_FRACTION, Quote, check_output_tokens
from bme.errors import ConfigError
from bme.user.quote import quote_job

console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    """The prompt text of `--prompt` or `--prompt-file` (`-` reads standard input); empty for neither."""
    if prompt is not None and prompt_file is not None:
        raise ConfigError("give --prompt or --prompt-file, not both")
    if prompt_file is None:
        return prompt or ""
    try:
        if str(prompt_file) == "-":
            return sys.stdin.read()
        return prompt_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no prompt file at {prompt_file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the prompt file {prompt_file}: {exc}") from None


def render(q: Quote) -> str:
    """The quote for people."""
    name = f" ({q.model_name})" if q.model_name else ""
    if q.prompt_tokens_exact:
        prompt = f"{q.prompt_tokens:,} tokens, counted with the model's tokenizer and chat template"
    elif q.prompt_tokens:
        prompt = f"{q.prompt_tokens:,} tokens, estimated (about 4 characters per token)"
    else:
        prompt = "none given (input tokens not counted)"
    fraction = EXPECTED_OUTPUT_FRACTION
    band = q.confidence * q.confidence_multiplier
    width = max(len(crd(q.max_credits)), len(crd(q.expected_credits))) + 4
    lines = [
        f"model {q.model_id}{name}: {usd(q.input_price_per_million, 6)} per million input tokens, "
        f"{usd(q.output_price_per_million, 6)} per million output tokens",
        f"prompt: {prompt}",
        f"output: at most {q.max_output_tokens:,} tokens; the expected cost assumes "
        f"{q.expected_output_tokens:,} (default: {fraction.numerator}/{fraction.denominator} of the most)",
        "",
        f"{'':<15}{'USD credits':<{width}}CMP",
        f"{'max cost':<15}{crd(q.max_credits):<{width}}{cmp(q.max_cmp)}",
        f"{'expected cost':<15}{crd(q.expected_credits):<{width}}{cmp(q.expected_cmp)}",
        "",
        f"oracle price {usd(q.oracle_price, 18)} per CMP, confidence {usd(q.confidence, 18)}; burns are "
        f"credited at {usd(q.burn_price, 18)} (the price less {q.confidence_multiplier} confidence bands), "
        f"less the mint spread of {q.mint_spread_bps} bps",
        f"pricing cost of the burn: {cmp(q.spread_cost_cmp)} mint spread, "
        f"{cmp(q.confidence_cost_cmp)} confidence bands ({usd(band, 18)} per CMP)",
        f"to open the job: burn {cmp(q.burn_cmp)}, which reserves {crd(q.burn_credits)}",
    ]
    if q.min_mint_applies:
        lines.append(
            f"  (a burn must mint at least {crd(q.min_mint_credits)}; what the job does not use is refunded "
            "to you as CRD when it is settled, and pays for later jobs)"
        )
    return "\n".join(lines)


def quote_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="The model: its id or its name in the price book.")
    ],
    max_tokens: Annotated[int, typer.Option(help="The most output tokens the job may produce.")],
    prompt: Annotated[str | None, typer.Option(help="The prompt, to count its input tokens.")] = None,
    prompt_file: Annotated[
        Path | None, typer.Option(help="A file holding the prompt ('-': standard input).")
    ] = None,
    expected_tokens: Annotated[
        int | None,
        typer.Option(help="Output tokens the expected cost assumes (default: half of --max-tokens)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object (base units).")] = False,
    rpc_url: RpcOpt = DEFAULT_RPC,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """The maximum and expected cost of a job, in USD credits and in CMP at the current oracle price.

    The figures are the contracts' own, rounding included: the price book's cost, the CMP burnForJob burns.
    """
    check_output_tokens(max_tokens, expected_tokens)
    text = read_prompt(prompt, prompt_file)
    with chain_errors(rpc_url):
        protocol = open_protocol(rpc_url, deployment)
        q = quote_job(
            protocol, model, max_output_tokens=max_tokens, prompt=text, expected_output_tokens=expected_tokens
        )
    if json_output:
        sys.stdout.write(json.dumps({**asdict(q), "min_mint_applies": q.min_mint_applies}) + "\n")
    else:
        console.print(render(q), soft_wrap=True)
    for problem in q.problems:
        err_console.print(f"warning: a burn now would fail: {problem}", soft_wrap=True)

"""A job's quote for a prompt: the price book and the BME core as they are now (`bme.chain.pricing`), the
prompt's tokens counted with the model's own tokenizer or estimated (`bme.user.prompt_tokens`), the cost
computed as the contracts will charge it (`bme.economics.quote`)."""

from __future__ import annotations

from bme.chain.deploy import Protocol
from bme.chain.pricing import find_model, read_market
from bme.economics.quote import Quote, compute_quote


def quote_job(
    protocol: Protocol,
    model: str,
    *,
    max_output_tokens: int,
    prompt: str = "",
    system: str | None = None,
    expected_output_tokens: int | None = None,
) -> Quote:
    """The cost now of a job of `model` (an id or a name) answering `prompt` (a user message, after the
    `system` message if any) in at most `max_output_tokens`: the price book and the BME core of `protocol`
    as they are, the prompt's tokens counted or estimated (`bme.user.prompt_tokens`); no prompt counts as
    none."""
    from bme.user.prompt_tokens import PromptTokens, count_prompt_tokens

    found = find_model(protocol, model)
    if prompt or system:
        tokens = count_prompt_tokens(prompt, found.name, system)
    else:
        tokens = PromptTokens(0, exact=False)
    return compute_quote(
        found,
        read_market(protocol),
        prompt_tokens=tokens.count,
        max_output_tokens=max_output_tokens,
        prompt_tokens_exact=tokens.exact,
        expected_output_tokens=expected_output_tokens,
    )

"""`bme quote` and `bme.user.quote`: the quoted credits and CMP are exactly what the contracts give, rounding
included (checked by burning the quoted CMP with `burnForJob` and settling the job); bad input is refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from web3.logs import DISCARD

from bme.chain.pricing import find_model, read_market
from bme.display import cmp, crd
from bme.economics.params import Parameters
from bme.economics.quote import Market, Model, compute_quote, credits_for_tokens, tokens_for_credits
from bme.errors import ChainError, ConfigError, ContractRevert
from bme.gguf.files import EMBEDDED_MODEL_NAME
from bme.user.prompt_tokens import CHARS_PER_TOKEN, count_prompt_tokens, estimate_tokens
from bme.user.quote import quote_job

from .conftest import BIG, CMP, CONFIDENCE, CRD, PRICE, Devnet, bme

PROMPT = "Explain, in three sentences, why the sky is blue."
SPEC = iter(range(1, 1_000))


def open_job(devnet: Devnet, tokens: int, model_id: int) -> tuple[int, int]:
    """Burns `tokens` with `burnForJob` as the user; returns the job id and the credits it reserved."""
    p, c = devnet.protocol, devnet.client
    spec = next(SPEC).to_bytes(32, "big")
    terms = (model_id, spec, c.timestamp() + 3600, 2**32 - 1, 2**32 - 1)
    sent = c.send(devnet.user, p.escrow.functions.burnForJob(tokens, 0, terms))
    (opened,) = p.escrow.events.JobOpened().process_receipt(sent.receipt, errors=DISCARD)
    assert opened["args"]["tokensBurned"] == tokens
    return opened["args"]["jobId"], opened["args"]["maxCredits"]


def test_the_quoted_burn_reserves_exactly_the_quoted_credits(devnet: Devnet) -> None:
    p = devnet.protocol
    devnet.fresh_price()
    q = quote_job(p, BIG.name, max_output_tokens=1_000_000, prompt=PROMPT * 40)
    assert (q.model_id, q.prompt_tokens_exact, q.problems) == (BIG.model_id, False, ())
    assert q.prompt_tokens == -(-len(PROMPT * 40) // CHARS_PER_TOKEN)
    assert q.max_credits > q.min_mint_credits and not q.min_mint_applies  # above the minimum mint
    # The cost is the price book's own, the CMP the core's own quote.
    assert (
        p.escrow.functions.costOf(BIG.model_id, q.prompt_tokens, q.max_output_tokens).call() == q.max_credits
    )
    assert p.escrow.functions.costOf(BIG.model_id, q.prompt_tokens, q.expected_output_tokens).call() == (
        q.expected_credits
    )
    assert p.bme.functions.quoteTokensForCredits(q.max_credits).call() == q.burn_cmp == q.max_cmp
    assert q.burn_price == PRICE - 2 * CONFIDENCE and q.mint_spread_bps == 25

    # One base unit fewer would not cover the job: the quoted burn is the least that does.
    assert p.bme.functions.quoteBurn(q.burn_cmp - 1).call() < q.max_credits

    job, reserved = open_job(devnet, q.burn_cmp, q.model_id)
    assert reserved == q.burn_credits >= q.max_credits
    assert p.escrow.functions.jobOf(job).call()[3] == q.burn_credits
    # Settled at the quoted token counts, the job is charged the quoted maximum; the rounding surplus returns.
    before = p.credit.functions.balanceOf(devnet.user.address).call()
    settlement = (job, devnet.operator.address, q.prompt_tokens, q.max_output_tokens, b"\x02" * 32)
    sent = devnet.client.send(devnet.relayer, p.escrow.functions.settle([settlement]))
    (settled,) = p.escrow.events.JobSettled().process_receipt(sent.receipt, errors=DISCARD)
    assert (settled["args"]["charge"], settled["args"]["refund"]) == (q.max_credits, reserved - q.max_credits)
    assert p.credit.functions.balanceOf(devnet.user.address).call() == before + reserved - q.max_credits


def test_a_job_below_the_minimum_mint_burns_exactly_the_minimum(devnet: Devnet) -> None:
    p = devnet.protocol
    devnet.fresh_price()
    q = quote_job(p, "1", max_output_tokens=256, prompt=PROMPT)
    assert q.model_name == EMBEDDED_MODEL_NAME and q.prompt_tokens_exact
    assert q.min_mint_applies and q.max_credits < q.min_mint_credits <= q.burn_credits
    assert q.burn_cmp == p.bme.functions.quoteTokensForCredits(q.min_mint_credits).call()
    with pytest.raises(ContractRevert) as below:
        open_job(devnet, q.burn_cmp - 1, q.model_id)
    assert below.value.name == "BmeBelowMinimumMint"
    _, reserved = open_job(devnet, q.burn_cmp, q.model_id)
    assert reserved == q.burn_credits


def test_tokens_for_credits_is_the_exact_inverse_of_the_burn(devnet: Devnet) -> None:
    p = devnet.protocol
    devnet.fresh_price()
    market = read_market(p)
    assert (market.price, market.confidence, market.problems()) == (PRICE, CONFIDENCE, ())
    bme = p.bme.functions
    for credits in (1, 7, 999_999, 10 * CRD, 10 * CRD + 1, 123_456_789, 1_099_511_627_775):
        tokens = tokens_for_credits(credits, market.burn_price, market.params.mint_spread_bps)
        assert tokens == market.tokens_for(credits) == bme.quoteTokensForCredits(credits).call()
        assert credits_for_tokens(tokens, market.burn_price, 25) == bme.quoteBurn(tokens).call() >= credits
        assert bme.quoteBurn(tokens - 1).call() < credits
    assert tokens_for_credits(0, market.burn_price, 25) == 0


def test_find_model_by_id_or_name(devnet: Devnet) -> None:
    p = devnet.protocol
    assert find_model(p, "7") == Model(7, BIG.name, 3_000_000, 15_000_000, True)
    assert find_model(p, "big-model-70b").model_id == 7  # names match case-insensitively
    assert find_model(p, "SmolLM2-135M-Instruct").model_id == 1
    with pytest.raises(ConfigError, match="no model named 'GPT' in the price book"):
        find_model(p, "GPT")
    with pytest.raises(ConfigError, match="model 9 is not in the price book"):
        find_model(p, "9")
    with pytest.raises(ConfigError, match="out of range"):
        find_model(p, "70000")


def test_quote_command(devnet: Devnet, tmp_path: Path) -> None:
    devnet.fresh_price()
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(PROMPT * 40)
    r = bme(
        "quote",
        "--model",
        BIG.name,
        "--max-tokens",
        "1000000",
        "--prompt-file",
        str(prompt),
        env=devnet.env(),
    )
    assert r.exit_code == 0, r.output + repr(r.exception)
    q = quote_job(devnet.protocol, "7", max_output_tokens=1_000_000, prompt=PROMPT * 40)
    out = r.stdout
    assert f"model 7 ({BIG.name}): $3.00 per million input tokens, $15.00 per million output tokens" in out
    assert f"prompt: {q.prompt_tokens:,} tokens, estimated" in out
    assert "at most 1,000,000 tokens; the expected cost assumes 500,000" in out
    assert f"max cost       {crd(q.max_credits)}" in out
    assert f"{cmp(q.max_cmp)}" in out
    assert "oracle price $1.37 per CMP, confidence $0.003; burns are credited at $1.364" in out
    assert "mint spread of 25 bps" in out and "mint spread," in out
    assert f"to open the job: burn {cmp(q.burn_cmp)}, which reserves" in out
    assert r.stderr == ""

    r = bme("quote", "-m", "1", "--max-tokens", "64", "--prompt", PROMPT, "--json", env=devnet.env())
    assert r.exit_code == 0, r.output + repr(r.exception)
    data = json.loads(r.stdout)
    assert data["model_id"] == 1 and data["prompt_tokens_exact"] and data["min_mint_applies"]
    assert data["burn_credits"] >= data["min_mint_credits"] == 10 * CRD


def test_quote_command_refuses_bad_input(devnet: Devnet, tmp_path: Path) -> None:
    env = devnet.env()
    for args, message in [
        (["-m", "GPT", "--max-tokens", "10"], "no model named 'GPT'"),
        (["-m", "9", "--max-tokens", "10"], "model 9 is not in the price book"),
        (["-m", "1", "--max-tokens", "0"], "the maximum output must be at least 1 token (0 given)"),
        (["-m", "1", "--max-tokens", "-5"], "at least 1 token"),
        (["-m", "1", "--max-tokens", "10", "--expected-tokens", "11"], "must be 0 to 10 tokens"),
        (["-m", "7", "--max-tokens", str(10**12)], "a job may reserve at most"),
        (["-m", "1", "--max-tokens", "10", "--prompt", "a", "--prompt-file", "f"], "not both"),
        (["-m", "1", "--max-tokens", "10", "--prompt-file", str(tmp_path / "none")], "no prompt file"),
    ]:
        r = bme("quote", *args, env=env)
        assert isinstance(r.exception, ConfigError), (args, r.output, r.exception)
        assert message in str(r.exception), (args, str(r.exception))
    r = bme("quote", "-m", "1", "--max-tokens", "many", env=env)
    assert r.exit_code == 2 and "Invalid value" in r.stderr  # a usage error, as for any integer option
    r = bme("quote", "-m", "1", "--max-tokens", "5", env=devnet.env(BME_DEPLOYMENT=str(tmp_path / "x.json")))
    assert isinstance(r.exception, ConfigError) and "no deployment file at" in str(r.exception)


def test_a_stale_oracle_is_quoted_with_a_warning(devnet: Devnet) -> None:
    devnet.fresh_price()
    devnet.client.w3.provider.make_request("evm_increaseTime", [31])  # type: ignore[arg-type]
    devnet.client.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    r = bme("quote", "-m", "1", "--max-tokens", "10", env=devnet.env())
    assert r.exit_code == 0, repr(r.exception)
    assert "warning: a burn now would fail: the oracle price is stale (last update 3" in r.stderr
    assert "s ago, limit 30 s)" in r.stderr
    devnet.fresh_price()


# ---------------------------------------------------------------- the pure function

MARKET = Market(price=2 * CMP, confidence=0, updated_at=100, chain_time=110, params=Parameters())
SMOL = Model(1, "small", 100_000, 200_000)


def test_compute_quote_by_hand() -> None:
    q = compute_quote(SMOL, MARKET, prompt_tokens=1_000, max_output_tokens=1_001)
    # 1,000 x 0.1 + 1,001 x 0.2 = 300.2 micro-dollars, rounded up; expected: 501 output tokens.
    assert (q.max_credits, q.expected_output_tokens, q.expected_credits) == (301, 501, 201)
    # At $2 less 25 bps, 301 micro-dollars need ceil(301e-6 / 1.995) CMP.
    assert q.max_cmp == -(-301 * 10**30 * 10_000 // (2 * CMP * 9_975))
    assert q.burn_credits == 10 * CRD and q.burn_cmp == -(-10 * CRD * 10**30 * 10_000 // (2 * CMP * 9_975))
    assert q.confidence_cost_cmp == 0
    assert q.spread_cost_cmp == q.burn_cmp - 5 * CMP  # $10 at $2 with no spread: 5 CMP
    q = compute_quote(SMOL, MARKET, prompt_tokens=0, max_output_tokens=10, expected_output_tokens=0)
    assert (q.expected_credits, q.expected_cmp) == (0, 0)


def test_market_problems_mirror_the_core_checks() -> None:
    assert MARKET.problems() == ()
    assert "stale (last update 40 s ago, limit 30 s)" in replace(MARKET, chain_time=140).problems()[0]
    assert "too uncertain" in replace(MARKET, confidence=CMP // 25).problems()[0]  # 200 bps of $2
    assert replace(MARKET, paused=True).problems() == ("the protocol is paused",)
    halted = replace(MARKET, backing_tokens=1, outstanding_credits=10 * CRD)
    assert "halt threshold" in halted.problems()[0]
    with pytest.raises(ChainError, match="no usable price"):
        compute_quote(SMOL, replace(MARKET, confidence=CMP), prompt_tokens=0, max_output_tokens=1)
    with pytest.raises(ConfigError, match="delisted"):
        compute_quote(replace(SMOL, listed=False), MARKET, prompt_tokens=0, max_output_tokens=1)


def test_prompt_tokens_are_counted_for_the_embedded_model_and_estimated_otherwise() -> None:
    counted = count_prompt_tokens(PROMPT, EMBEDDED_MODEL_NAME)
    assert counted.exact and counted.count > estimate_tokens(PROMPT) // 2
    with_system = count_prompt_tokens(PROMPT, EMBEDDED_MODEL_NAME, system="Be brief.")
    assert with_system.exact and with_system.count != counted.count
    estimated = count_prompt_tokens(PROMPT, "another-model")
    assert not estimated.exact and estimated.count == estimate_tokens(PROMPT) == 13
    assert estimate_tokens("") == 0

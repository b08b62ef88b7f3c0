"""What a job costs, in USD credits and in CMP, computed exactly as the contracts will charge it: pure
arithmetic on the price book's listing and the BME core's pricing state (read from the chain by
`bme.chain.pricing`, quoted for a prompt by `bme.user.quote`).

The arithmetic is the contracts' own, through their Python mirror (`bme.economics.math`, rounding included):

- a job's maximum cost is `ModelPriceBook.costOf(model, promptTokens, maxOutputTokens)`: `jobCostUp`, the
  price book's micro-dollars per million tokens, rounded up. A settlement never charges more than that (the
  escrow caps the charge at the reservation) as long as the prompt is no longer than counted;
- the BME core credits a burn at the conservative *burn price*, the oracle price less `confidenceMultiplier`
  (2, Helium's rule) confidence bands (`burnPriceDown`), less the mint spread (25 bps, Akash AEP-76), rounded
  down (`toCreditsDown`): `burnForJob(t, ...)` reserves exactly `credits_for_tokens(t, ...)` for the job;
- `tokens_for_credits` inverts that: the fewest CMP base units whose credits cover a cost (`toTokensUp`, the
  same figure as the core's `quoteTokensForCredits`); one base unit fewer would not cover it;
- a burn must mint at least `minMintCredits` (10 CRD, Akash AEP-76), so a job cheaper than that still burns
  that much (`Market.tokens_to_open`); settlement refunds what the job did not use to the payer as CRD, which
  pays for later jobs (`openJob`) without another burn.

The expected cost assumes the model writes `EXPECTED_OUTPUT_FRACTION` (half) of the maximum output tokens:
chat answers usually stop well before the cap a client sets, but there is no better figure without knowing
the model and the prompt; a caller who knows better passes `expected_output_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from bme import display
from bme.economics.math import (
    BPS,
    burn_price_down,
    ceil_div,
    collateral_ratio_bps_down,
    confidence_within,
    job_cost_up,
    to_credits_down,
    to_tokens_up,
)
from bme.economics.oracle import DEFAULT_MAX_AGE, is_fresh
from bme.economics.params import MAX_JOB_CREDITS, Parameters
from bme.economics.status import Status, next_status
from bme.errors import ChainError, ConfigError

#: The share of the maximum output tokens the expected cost assumes the model writes.
EXPECTED_OUTPUT_FRACTION = Fraction(1, 2)


def credits_for_tokens(tokens: int, burn_price: int, mint_spread_bps: int) -> int:
    """The credits (CRD base units) a burn of `tokens` CMP base units gives at `burn_price` (dollars per CMP,
    WAD) less `mint_spread_bps`: exactly what the BME core mints or reserves (`BmeMath.toCreditsDown`)."""
    return to_credits_down(tokens, burn_price, mint_spread_bps)


def tokens_for_credits(credits: int, burn_price: int, mint_spread_bps: int) -> int:
    """The fewest CMP base units whose burn gives at least `credits` at `burn_price` less `mint_spread_bps`.

    The inverse of `credits_for_tokens`, rounded up (`BmeMath.toTokensUp`, as the core's
    `quoteTokensForCredits`): `credits_for_tokens(t) >= credits` and `credits_for_tokens(t - 1) < credits`.
    It does not apply the minimum mint: see `Market.tokens_to_open` for the burn that opens a job.
    """
    if credits < 0:
        raise ValueError("credits must not be negative")
    if burn_price <= 0:
        raise ChainError("the oracle has no usable price: no burn is possible")
    if not 0 <= mint_spread_bps < BPS:
        raise ValueError(f"a mint spread of {mint_spread_bps} bps leaves nothing to credit")
    return to_tokens_up(credits, burn_price, mint_spread_bps)


@dataclass(frozen=True)
class Model:
    """A model of the price book: prices are CRD base units (micro-dollars) per million tokens."""

    model_id: int
    name: str
    input_price_per_million: int
    output_price_per_million: int
    listed: bool = True

    @property
    def label(self) -> str:
        return f"model {self.model_id}" + (f" ({self.name})" if self.name else "")

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """The charge for a job, as `ModelPriceBook.costOf` computes it (rounded up)."""
        return job_cost_up(
            input_tokens, output_tokens, self.input_price_per_million, self.output_price_per_million
        )


@dataclass(frozen=True)
class Market:
    """The BME core's state that prices a burn: the oracle reading, the parameters, the status.

    `chain_time` is the time the next block will carry, against which the oracle's age is judged as the
    contract will judge a burn sent now (on an idle devnet the latest block can be minutes older).
    """

    price: int
    confidence: int
    updated_at: int
    chain_time: int
    params: Parameters
    max_age: int = DEFAULT_MAX_AGE  # the oracle's freshness limit (`IPriceOracle.maxAge`)
    status: Status = Status.HEALTHY
    backing_tokens: int = 0
    outstanding_credits: int = 0
    paused: bool = False

    @property
    def burn_price(self) -> int:
        """The conservative price burns are credited at: the oracle price less 2 confidence bands."""
        return burn_price_down(self.price, self.confidence, self.params.confidence_multiplier)

    @property
    def price_age(self) -> int:
        return max(self.chain_time - self.updated_at, 0)

    @property
    def fresh(self) -> bool:
        """Whether the BME core would accept the oracle's reading in the next block (`is_fresh`)."""
        return is_fresh(self.updated_at, self.chain_time, self.max_age)

    def tokens_for(self, credits: int) -> int:
        """CMP base units whose burn gives at least `credits` now (no minimum mint)."""
        return tokens_for_credits(credits, self.burn_price, self.params.mint_spread_bps)

    def credits_for(self, tokens: int) -> int:
        """The credits a burn of `tokens` gives now."""
        return credits_for_tokens(tokens, self.burn_price, self.params.mint_spread_bps)

    def tokens_to_open(self, max_credits: int) -> int:
        """The CMP base units `burnForJob` must burn for a job of `max_credits`: enough to cover them and the
        minimum mint, whichever is more (the surplus is refunded as CRD at settlement)."""
        return max(self.tokens_for(max_credits), self.tokens_for(self.params.min_mint_credits))

    def problems(self) -> tuple[str, ...]:
        """Why a burn would revert now, in the BME core's order of checks; empty when it would go through."""
        out: list[str] = []
        if self.paused:
            out.append("the protocol is paused")
        p = self.params
        if self.price == 0:
            return (*out, "the oracle has no usable price")
        if not self.fresh:
            out.append(
                f"the oracle price is stale (last update {display.duration(self.price_age)} ago, "
                f"limit {display.duration(self.max_age)})"
            )
        elif not confidence_within(self.price, self.confidence, p.oracle_max_confidence_bps):
            out.append(f"the oracle is too uncertain (confidence above {p.oracle_max_confidence_bps} bps)")
        else:
            cr = collateral_ratio_bps_down(self.backing_tokens, self.price, self.outstanding_credits)
            status = next_status(self.status, True, cr, p.cr_warn_bps, p.cr_halt_bps, p.cr_hysteresis_bps)
            if status == Status.HALT_CR:
                out.append("the collateral ratio is below the halt threshold: burns are halted")
        return tuple(out)


@dataclass(frozen=True)
class Quote:
    """A job's cost. Credits are CRD base units (1 CRD = $1, 6 decimals); CMP amounts are base units (18
    decimals); prices are dollars per CMP as WAD (18 decimals)."""

    model_id: int
    model_name: str
    input_price_per_million: int
    output_price_per_million: int
    prompt_tokens: int
    prompt_tokens_exact: bool
    max_output_tokens: int
    expected_output_tokens: int
    #: The most the job can be charged: its reservation.
    max_credits: int
    expected_credits: int
    oracle_price: int
    confidence: int
    confidence_multiplier: int
    #: The conservative price of the BME core: oracle price less `confidence_multiplier` confidence bands.
    burn_price: int
    mint_spread_bps: int
    min_mint_credits: int
    #: CMP whose burn covers `max_credits` (no minimum mint).
    max_cmp: int
    #: CMP whose burn covers `expected_credits`: what the job is expected to consume.
    expected_cmp: int
    #: CMP `burnForJob` must burn to open the job: `max_cmp`, or more when the minimum mint applies.
    burn_cmp: int
    #: The credits that burn reserves for the job (`burnForJob`'s `credits`); the unused part is refunded.
    burn_credits: int
    #: Of `burn_cmp`, what the mint spread takes.
    spread_cost_cmp: int
    #: Of `burn_cmp`, what pricing below the oracle price (the confidence bands) takes.
    confidence_cost_cmp: int
    #: Why a burn would revert now (a stale oracle, a halt, a pause); empty when it would go through.
    problems: tuple[str, ...] = ()

    @property
    def min_mint_applies(self) -> bool:
        return self.burn_cmp > self.max_cmp


def check_output_tokens(max_output_tokens: int, expected_output_tokens: int | None = None) -> int:
    """The expected output tokens of a job of at most `max_output_tokens`: `expected_output_tokens`, else
    `EXPECTED_OUTPUT_FRACTION` of the maximum, rounded up. Raises `ConfigError` for impossible figures."""
    if max_output_tokens < 1:
        raise ConfigError(f"the maximum output must be at least 1 token ({max_output_tokens} given)")
    if expected_output_tokens is None:
        f = EXPECTED_OUTPUT_FRACTION
        return ceil_div(max_output_tokens * f.numerator, f.denominator)
    if not 0 <= expected_output_tokens <= max_output_tokens:
        raise ConfigError(
            f"the expected output ({expected_output_tokens} tokens) must be 0 to {max_output_tokens} tokens"
        )
    return expected_output_tokens


def compute_quote(
    model: Model,
    market: Market,
    *,
    prompt_tokens: int,
    max_output_tokens: int,
    prompt_tokens_exact: bool = False,
    expected_output_tokens: int | None = None,
) -> Quote:
    """The cost of a job of `model` with `prompt_tokens` in and at most `max_output_tokens` out, at `market`.

    Raises `ConfigError` for impossible inputs (no output, a delisted model, a job above the escrow's cap)
    and `ChainError` when the oracle gives no price to burn at.
    """
    expected = check_output_tokens(max_output_tokens, expected_output_tokens)
    if prompt_tokens < 0:
        raise ConfigError(f"the prompt cannot have {prompt_tokens} tokens")
    if not model.listed:
        raise ConfigError(f"{model.label} is delisted: no new job may be opened for it")
    max_credits = model.cost(prompt_tokens, max_output_tokens)
    expected_credits = model.cost(prompt_tokens, expected)
    if market.burn_price == 0:
        raise ChainError("the oracle has no usable price (its confidence band swallows it): no burn possible")
    p = market.params
    burn_cmp = market.tokens_to_open(max_credits)
    burn_credits = market.credits_for(burn_cmp)
    if burn_credits > MAX_JOB_CREDITS:
        raise ConfigError(
            f"a job may reserve at most {display.crd(MAX_JOB_CREDITS)}; this one needs "
            f"{display.crd(burn_credits)}: lower --max-tokens or shorten the prompt"
        )
    # The same credits without the spread, then at the oracle price itself: the two costs of pricing a burn.
    credits = max(max_credits, p.min_mint_credits)
    no_spread = tokens_for_credits(credits, market.burn_price, 0)
    at_oracle = tokens_for_credits(credits, market.price, 0)
    return Quote(
        model_id=model.model_id,
        model_name=model.name,
        input_price_per_million=model.input_price_per_million,
        output_price_per_million=model.output_price_per_million,
        prompt_tokens=prompt_tokens,
        prompt_tokens_exact=prompt_tokens_exact,
        max_output_tokens=max_output_tokens,
        expected_output_tokens=expected,
        max_credits=max_credits,
        expected_credits=expected_credits,
        oracle_price=market.price,
        confidence=market.confidence,
        confidence_multiplier=p.confidence_multiplier,
        burn_price=market.burn_price,
        mint_spread_bps=p.mint_spread_bps,
        min_mint_credits=p.min_mint_credits,
        max_cmp=market.tokens_for(max_credits),
        expected_cmp=market.tokens_for(expected_credits),
        burn_cmp=burn_cmp,
        burn_credits=burn_credits,
        spread_cost_cmp=burn_cmp - no_spread,
        confidence_cost_cmp=no_spread - at_oracle,
        problems=market.problems(),
    )

"""Mirror of `contracts/libraries/BmeMath.sol`: the economic arithmetic, with explicit rounding.

Units: tokens are CMP base units (18 decimals); prices are dollars per whole CMP as WAD (18 decimals);
credits are CRD base units (6 decimals); rates are basis points.
"""

from __future__ import annotations

BPS = 10_000
TOKEN_PRICE_TO_CREDITS = 10**30
UINT256_MAX = 2**256 - 1


def ceil_div(a: int, b: int) -> int:
    """Integer division rounded up, for non-negative operands."""
    return -(-a // b)


def to_credits_down(tokens: int, price: int, spread_bps: int) -> int:
    """Credits for burning `tokens` at `price`, less `spread_bps`, rounded down."""
    return tokens * (price * (BPS - spread_bps)) // (TOKEN_PRICE_TO_CREDITS * BPS)


def to_tokens_down(credits: int, price: int, spread_bps: int) -> int:
    """Tokens paid out for redeeming `credits` at `price`, less `spread_bps`, rounded down."""
    return credits * (BPS - spread_bps) * TOKEN_PRICE_TO_CREDITS // (price * BPS)


def to_tokens_up(credits: int, price: int, spread_bps: int) -> int:
    """Tokens to burn to receive at least `credits`, rounded up."""
    return ceil_div(credits * TOKEN_PRICE_TO_CREDITS * BPS, price * (BPS - spread_bps))


def burn_price_down(price: int, confidence: int, multiplier: int) -> int:
    """The oracle price less `multiplier` confidence bands, floored at zero."""
    band = confidence * multiplier
    return 0 if band >= price else price - band


def redeem_price_up(price: int, confidence: int, multiplier: int) -> int:
    """The oracle price plus `multiplier` confidence bands."""
    return price + confidence * multiplier


def job_cost_up(input_tokens: int, output_tokens: int, input_price: int, output_price: int) -> int:
    """A job's cost in credits, rounded up; prices are credits per million tokens."""
    return ceil_div(input_tokens * input_price + output_tokens * output_price, 10**6)


def collateral_ratio_bps_down(backing_tokens: int, price: int, outstanding_credits: int) -> int:
    """The collateral ratio in basis points, rounded down; the uint256 maximum when nothing is outstanding."""
    if outstanding_credits == 0:
        return UINT256_MAX
    return backing_tokens * price // (outstanding_credits * (TOKEN_PRICE_TO_CREDITS // BPS))


def confidence_within(price: int, confidence: int, max_confidence_bps: int) -> bool:
    """Whether the confidence band is at most `max_confidence_bps` of the price."""
    return confidence * BPS <= price * max_confidence_bps

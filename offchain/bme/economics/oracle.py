"""The oracle's rules: when a reading may price a burn or a redemption (its freshness, judged against the
oracle's own `maxAge`), and how far one push to `ManualPriceOracle` may move the price."""

from __future__ import annotations

#: Akash AEP-76: a pushed price older than 30 seconds is stale (`ManualPriceOracle.DEFAULT_MAX_AGE`).
DEFAULT_MAX_AGE = 30
#: This project: one push moves the price by at most 10 % (`ManualPriceOracle.DEFAULT_MAX_STEP_BPS`).
DEFAULT_MAX_STEP_BPS = 1000
#: The widest step bound the manual oracle accepts (`ManualPriceOracle.MAX_STEP_BPS`): a hundredfold move.
MAX_STEP_BPS = 1_000_000
#: Seconds of observation time a full step needs; 0: every push may make a full step (as deployed by default).
DEFAULT_STEP_PERIOD = 0
BPS = 10_000


def is_fresh(updated_at: int, now: int, max_age: int) -> bool:
    """Whether a reading observed at `updated_at` is fresh at chain time `now` under the oracle's `maxAge`
    `max_age`, as `BurnMintEquilibrium._checkedPrice` judges it: it has a time, that time is not in the
    future, and it is at most `max_age` seconds old. A stale reading reverts with `BmeOracleStale`."""
    return updated_at != 0 and updated_at <= now and now - updated_at <= max_age


def _share(elapsed: int, period: int) -> tuple[int, int]:
    """The share of a full step a push `elapsed` seconds after the last one may make, as a fraction."""
    return (1, 1) if period == 0 else (min(elapsed, period), period)


def step_within(last: int, price: int, max_step_bps: int, elapsed: int = 0, period: int = 0) -> bool:
    """Whether a push of `price`, observed `elapsed` seconds after the last price `last`, is within the manual
    oracle's step bound, as `ManualPriceOracle.pushPrice` judges it: the first price (`last` zero) is free, a
    zero bound is none, and with a step `period` a push may make `elapsed / period` of a full step."""
    if max_step_bps == 0 or last == 0:
        return True
    share, whole = _share(elapsed, period)
    return abs(price - last) * BPS * whole <= last * max_step_bps * share


def allowed_step_bps(max_step_bps: int, elapsed: int, period: int) -> int:
    """The bound a push `elapsed` seconds after the last one is held to (the step error's `allowedBps`)."""
    share, whole = _share(elapsed, period)
    return max_step_bps * share // whole


def bounded_steps(last: int, target: int, max_step_bps: int) -> list[int]:
    """The prices a feeder pushes, in order, to take the oracle from `last` to `target` in full steps the
    oracle accepts (pushed at least a step period apart): each the largest move allowed toward `target`, the
    last one `target` itself. One push when the move is within the bound (or there is no bound, or no price
    yet)."""
    if target <= 0:
        raise ValueError("a price must be positive")
    steps: list[int] = []
    price = last
    while not step_within(price, target, max_step_bps):
        move = price * max_step_bps // BPS
        if move == 0:
            raise ValueError(f"a price of {price} cannot move in steps of {max_step_bps} bps")
        price = price + move if target > price else price - move
        steps.append(price)
    steps.append(target)
    return steps

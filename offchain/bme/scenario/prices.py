"""The token's price path: one market price per epoch (what the feeder pushes at the epoch's start), its
confidence band, and whether the feeder pushes at all (outages), from the scenario's price section and
seed."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from bme.errors import ConfigError
from bme.scenario.spec import ConstantPrice, CsvPrice, GbmPrice, PointsPrice, Scenario
from bme.scenario.units import wad_from_float

YEAR = 365 * 86_400
UINT128 = 2**128


@dataclass(frozen=True)
class PricePath:
    """Per epoch: the market price (WAD, dollars per CMP), its confidence band (WAD), whether it is pushed."""

    market: tuple[int, ...]
    confidence: tuple[int, ...]
    pushed: tuple[bool, ...]


def price_path(s: Scenario, rng: np.random.Generator) -> PricePath:
    """The scenario's price path; raises ConfigError when it reaches zero or leaves the oracle's range."""
    spec = s.price
    n, length = s.epochs, s.epoch_length
    times = [k * length for k in range(n)]
    if isinstance(spec, ConstantPrice):
        base = [spec.initial] * n
    elif isinstance(spec, PointsPrice):
        base = [_interpolate([(p.at, p.price) for p in spec.points], t) for t in times]
    elif isinstance(spec, GbmPrice):
        dt = length / YEAR
        steps = (spec.drift - spec.volatility**2 / 2) * dt + spec.volatility * math.sqrt(
            dt
        ) * rng.standard_normal(n - 1)
        logs = np.concatenate(([0.0], np.cumsum(steps)))
        base = [float(spec.initial * math.exp(x)) for x in logs]
    elif isinstance(spec, CsvPrice):
        offsets, prices = spec.series
        base = [_as_of(offsets, prices, t) for t in times]
    else:  # pragma: no cover - the schema admits only the kinds above
        raise ConfigError(f"unknown price kind {spec!r}")

    market: list[int] = []
    for k, (t, price) in enumerate(zip(times, base, strict=True)):
        for shock in spec.shocks:
            if shock.at <= t:
                price *= shock.factor
        wad = wad_from_float(price) if math.isfinite(price) else UINT128
        if wad <= 0:
            raise ConfigError(f"price: the path reaches $0 (below a picodollar) at epoch {k}")
        if wad >= UINT128:
            raise ConfigError(f"price: the path leaves the oracle's range (2^128 WAD) at epoch {k}")
        market.append(wad)
    confidence = tuple(p * spec.confidence_bps // 10_000 for p in market)
    pushed = tuple(not any(o.start <= t < o.end for o in spec.outages) for t in times)
    return PricePath(tuple(market), confidence, pushed)


def _interpolate(points: list[tuple[int, float]], t: int) -> float:
    """The piecewise-linear path through `points` at `t`, flat after the last point."""
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if t0 <= t < t1:
            return p0 + (p1 - p0) * (t - t0) / (t1 - t0)
    return points[-1][1]


def _as_of(offsets: tuple[int, ...], prices: tuple[float, ...], t: int) -> float:
    """The last price at or before `t`."""
    i = int(np.searchsorted(np.asarray(offsets), t, side="right")) - 1
    return prices[max(i, 0)]

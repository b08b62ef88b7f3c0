"""Summary statistics the benchmarks share."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0 to 1) of `values`: a value that was measured, not interpolated."""
    if not values:
        raise ValueError("no values to summarise")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

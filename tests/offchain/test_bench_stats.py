"""The benchmarks' nearest-rank percentiles."""

from __future__ import annotations

import pytest

from bme.bench.stats import percentile

pytestmark = pytest.mark.pure


def test_nearest_rank_percentiles_are_measured_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100, shuffled order must not matter
    values.reverse()
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.0) == 1.0 and percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)

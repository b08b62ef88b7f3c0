"""A recorded price series read from a CSV file (unix seconds or ISO 8601 times, positive prices), for a
scenario's `price: {kind: csv}`."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path


def read_price_csv(
    path: Path, time_column: str, price_column: str
) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """A recorded price series: seconds from its first row and the prices; ValueError explains any problem."""
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            for column in (time_column, price_column):
                if column not in columns:
                    raise ValueError(
                        f"{path.name} has no column {column!r} (its columns: {', '.join(columns) or 'none'})"
                    )
            rows = list(reader)
    except OSError as exc:
        raise ValueError(f"cannot read the price file {path}: {exc.strerror or exc}") from None
    if not rows:
        raise ValueError(f"{path.name} has no rows")
    times: list[int] = []
    prices: list[float] = []
    for line, row in enumerate(rows, start=2):
        t = _parse_time(row[time_column], f"{path.name} line {line}")
        try:
            price = float(row[price_column])
        except (TypeError, ValueError):
            raise ValueError(f"{path.name} line {line}: {row[price_column]!r} is not a price") from None
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"{path.name} line {line}: the price {price} is not positive: prices must be")
        if times and t <= times[-1]:
            raise ValueError(f"{path.name} line {line}: times must increase")
        times.append(t)
        prices.append(price)
    return tuple(t - times[0] for t in times), tuple(prices)


def _parse_time(text: str | None, where: str) -> int:
    value = (text or "").strip()
    try:
        return int(float(value))
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is neither unix seconds nor an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())

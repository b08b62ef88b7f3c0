"""When an oracle reading may price a burn or a redemption: the BME core's freshness rule."""

from __future__ import annotations


def is_fresh(updated_at: int, now: int, max_age: int) -> bool:
    """Whether a reading observed at `updated_at` is fresh at chain time `now` under `oracleMaxAge`
    `max_age`, as `BurnMintEquilibrium._checkedPrice` judges it: it has a time, that time is not in the
    future, and it is at most `max_age` seconds old. A stale reading reverts with `BmeOracleStale`."""
    return updated_at != 0 and updated_at <= now and now - updated_at <= max_age

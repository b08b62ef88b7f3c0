"""Units of scenario files: durations, decimal amounts and their conversion to the contracts' base units.

Amounts in scenario files are decimal numbers in whole units (CMP, US dollars); they are converted to integers
exactly, through `Decimal` of their written form, so that `0.1` means exactly one tenth and never a binary
float.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

CMP = 10**18  # base units of one CMP
SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdwy])\s*$")


def parse_duration(value: object) -> int:
    """Seconds from an integer number of seconds or a string such as `90s`, `30m`, `6h`, `1d`, `2w`, `1y`.

    Raises ValueError with the accepted forms when `value` is neither.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a duration must not be negative ({value} given)")
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = Decimal(match.group(1)) * SECONDS[match.group(2)]
            if seconds != seconds.to_integral_value():
                raise ValueError(f"{value!r} is not a whole number of seconds")
            return int(seconds)
    raise ValueError(
        f"expected a duration: seconds as an integer, or a number with a unit s, m, h, d, w or y "
        f"(such as 30s, 6h, 1d); got {value!r}"
    )


def to_decimal(value: object) -> Decimal:
    """The exact decimal a scenario file wrote: an int, a float (by its shortest representation) or a
    string."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float | str | Decimal):
        try:
            d = Decimal(str(value)) if not isinstance(value, Decimal) else value
        except InvalidOperation:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not d.is_finite():
            raise ValueError(f"expected a finite number, got {value!r}")
        return d
    raise ValueError(f"expected a number, got {value!r}")


def scaled(value: Decimal, decimals: int, what: str) -> int:
    """`value` in base units of `decimals` decimals, exactly; raises ValueError if it has more decimals."""
    units = value.scaleb(decimals)
    if units != units.to_integral_value():
        raise ValueError(f"{what} {value} has more than {decimals} decimals")
    return int(units)


def wad_from_float(price: float) -> int:
    """A price path's float value as a WAD, rounded to 12 decimals first (a picodollar), deterministically."""
    return round(price * 10**12) * 10**6

"""How amounts and times read wherever a person reads them: one formatter each, used by every error message,
status line and table, so that one figure is always written the same way.

Amounts are exact: a contract compares base units, so an error that says "fewer than the
10.025062656641604011 CMP needed" must not round the figure it compares. Trailing zeros are trimmed
(`1,000 CMP`, not `1,000.000000 CMP`). Times are the chain's timestamps shown as local date-times, with how
far they are from the chain's own clock (`in 12 min`, `47 s ago`): on a devnet whose clock was moved forward
the wall clock says nothing about a deadline.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

CMP_DECIMALS = 18
CRD_DECIMALS = 6
ETH_DECIMALS = 18


def amount(value: int, decimals: int, unit: str) -> str:
    """`value` base units (`decimals` of them per whole unit) as whole units with every significant digit,
    thousands separated and trailing zeros trimmed: `10.025062656641604011 CMP`, `1,000 CMP`, `0 CRD`."""
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(int(value)), 10**decimals)
    text = f"{sign}{whole:,}"
    if fraction:
        text += "." + f"{fraction:0{decimals}d}".rstrip("0")
    return f"{text} {unit}"


def cmp(value: int) -> str:
    """CMP base units (18 decimals) as CMP."""
    return amount(value, CMP_DECIMALS, "CMP")


def crd(value: int) -> str:
    """CRD base units (6 decimals: micro-dollars of credit) as CRD."""
    return amount(value, CRD_DECIMALS, "CRD")


def eth(value: int) -> str:
    """Wei as ETH."""
    return amount(value, ETH_DECIMALS, "ETH")


def approximate(value: int, decimals: int, unit: str, digits: int = 2) -> str:
    """An estimate (gas to pay, say) as `amount` writes it, rounded up to `digits` significant digits:
    `0.00047 ETH`, never less than the estimate."""
    value = int(value)
    if value <= 0:
        return amount(value, decimals, unit)
    step = 10 ** max(len(str(value)) - digits, 0)
    return amount(-(-value // step) * step, decimals, unit)


def usd(value: int, decimals: int) -> str:
    """`value` base units of dollars (`decimals` of them) as `$1,234.50`: cents always, and the smaller
    digits when they are not zero (`$0.000097`)."""
    whole, _, frac = f"{Decimal(value) / 10**decimals:,.{decimals}f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def duration(seconds: int) -> str:
    """A span of time in the two largest units that matter: `47 s`, `12 min`, `3 h 5 min`, `2 d 4 h`."""
    s = abs(int(seconds))
    if s < 120:
        return f"{s} s"
    minutes, hours, days = s // 60, s // 3600, s // 86_400
    if s < 3600:
        return f"{minutes} min"
    if s < 86_400:
        rest = minutes % 60
        return f"{hours} h" + (f" {rest} min" if rest else "")
    rest = hours % 24
    return f"{days} d" + (f" {rest} h" if rest else "")


def local_time(timestamp: int) -> str:
    """A unix timestamp as a local date-time with its zone: `2025-03-01 14:05:09 CET`; a timestamp beyond
    the calendar (a contract's argument may be any uint256) as `time 123...`."""
    try:
        moment = datetime.fromtimestamp(int(timestamp)).astimezone()
    except (OverflowError, OSError, ValueError):
        return f"time {int(timestamp)}"
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def relative(timestamp: int, now: int) -> str:
    """How far `timestamp` is from `now`: `in 12 min`, `47 s ago`, `now`."""
    delta = int(timestamp) - int(now)
    if delta == 0:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def when(timestamp: int, now: int | None = None) -> str:
    """A moment for people: its local date-time and, when the chain's time `now` is known, how far it is."""
    if now is None:
        return local_time(timestamp)
    return f"{local_time(timestamp)} ({relative(timestamp, now)})"


def deadline(timestamp: int, now: int) -> str:
    """A deadline: its local date-time, and `in 12 min` before it or `expired` after it."""
    left = int(timestamp) - int(now)
    return f"{local_time(timestamp)} ({'in ' + duration(left) if left >= 0 else 'expired'})"

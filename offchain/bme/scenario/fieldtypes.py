"""The value types of scenario files, with their validation: numbers, exact decimal amounts (CMP, dollars),
durations, counts and basis points, and the base of every section (unknown keys are errors)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, Strict

from bme.scenario.units import parse_duration, to_decimal


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be greater than zero ({value} given)")
    return value


def _non_negative(value: Decimal | float) -> Any:
    if value < 0:
        raise ValueError(f"must not be negative ({value} given)")
    return value


def _amount(value: object) -> Decimal:
    if isinstance(value, str):
        try:
            return to_decimal(value.replace("_", "").strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    return to_decimal(value)


def _decimals(places: int, unit: str) -> AfterValidator:
    def check(value: Decimal) -> Decimal:
        units = value.scaleb(places)
        if units != units.to_integral_value():
            raise ValueError(f"{value} has more decimals than a {unit} has ({places})")
        return value

    return AfterValidator(check)


Number = Annotated[float, BeforeValidator(_number)]
PositiveNumber = Annotated[float, BeforeValidator(_number), AfterValidator(_positive)]
NonNegativeNumber = Annotated[float, BeforeValidator(_number), AfterValidator(_non_negative)]
#: A decimal amount in whole units, converted exactly: CMP (18 decimals) or US dollars of credits (6).
Amount = Annotated[Decimal, BeforeValidator(_amount), AfterValidator(_non_negative), _decimals(18, "CMP")]
Dollars = Annotated[Decimal, BeforeValidator(_amount), AfterValidator(_non_negative), _decimals(6, "credit")]


def _mint_limit(value: object) -> Decimal | str:
    if value == "auto":
        return "auto"
    amount = _amount(value)
    if amount < 0 or amount.scaleb(18) != amount.scaleb(18).to_integral_value():
        raise ValueError(f"expected 'auto' or a non-negative amount of CMP, got {value!r}")
    return amount


#: CMP per mint window, or "auto" (5x the largest epoch emission).
MintLimit = Annotated[Decimal | Literal["auto"], PlainValidator(_mint_limit)]
#: Seconds, written as an integer or with a unit (`90s`, `30m`, `6h`, `1d`, `2w`, `1y`).
Duration = Annotated[int, BeforeValidator(parse_duration)]
Int = Annotated[int, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
Bps = Annotated[int, Strict(), Field(ge=0, le=10_000)]
#: A collateral-ratio threshold: basis points, above 10,000 (100 %) allowed, as the contract's uint16.
RatioBps = Annotated[int, Strict(), Field(ge=0, le=65_535)]


class Model(BaseModel):
    """Base of every section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

"""Mirror of `contracts/libraries/CollateralStatus.sol`: the status machine with hysteresis."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """The protocol's health; values match the Solidity enum."""

    HEALTHY = 0
    WARNING = 1
    HALT_CR = 2
    HALT_ORACLE = 3


#: The statuses by their Solidity names, as the relayer's API, reports and messages show them.
STATUS_NAMES: dict[int, str] = {
    Status.HEALTHY: "Healthy",
    Status.WARNING: "Warning",
    Status.HALT_CR: "HaltCR",
    Status.HALT_ORACLE: "HaltOracle",
}


def next_status(
    previous: Status, oracle_ok: bool, cr_bps: int, warn_bps: int, halt_bps: int, hysteresis_bps: int
) -> Status:
    """The next status; a status entered below a threshold is left only above threshold + hysteresis.

    `previous` is the collateral status: the BME core records an oracle failure beside it, so an oracle halt
    neither enters nor prolongs a collateral halt."""
    if not oracle_ok:
        return Status.HALT_ORACLE
    if cr_bps < halt_bps:
        return Status.HALT_CR
    was_halted = previous == Status.HALT_CR
    if was_halted and cr_bps < halt_bps + hysteresis_bps:
        return Status.HALT_CR
    if cr_bps < warn_bps:
        return Status.WARNING
    if previous != Status.HEALTHY and cr_bps < warn_bps + hysteresis_bps:
        return Status.WARNING
    return Status.HEALTHY

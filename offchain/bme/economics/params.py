"""Mirror of `contracts/libraries/BmeParameters.sol`: the parameters, their defaults and sources."""

from __future__ import annotations

from dataclasses import astuple, dataclass


@dataclass(frozen=True)
class Parameters:
    """The BME core's parameters, in the order of the Solidity struct. The oracle's freshness limit is the
    oracle's own (`bme.economics.oracle`), not one of these."""

    mint_spread_bps: int = 25  # Akash AEP-76
    settle_spread_bps: int = 0  # Akash AEP-76
    cr_warn_bps: int = 9500  # Akash AEP-76
    cr_halt_bps: int = 9000  # Akash AEP-76
    cr_hysteresis_bps: int = 100  # this project
    oracle_max_confidence_bps: int = 150  # Akash AEP-76 (deviation bound)
    confidence_multiplier: int = 2  # Helium (EMA - 2 * confidence)
    mint_window: int = 86_400  # Helium, seconds
    min_mint_credits: int = 10 * 10**6  # Akash AEP-76: 10 CRD

    def as_tuple(self) -> tuple[int, ...]:
        """The struct as the ABI encodes it."""
        return astuple(self)

    def is_valid(self) -> bool:
        """Mirror of `BmeParameters.isValid`."""
        return (
            self.mint_spread_bps < 5000
            and self.settle_spread_bps < 5000
            and self.cr_halt_bps < self.cr_warn_bps
            and self.cr_hysteresis_bps <= 2000
            and self.oracle_max_confidence_bps <= 10_000
            and self.confidence_multiplier <= 10
            and self.mint_window > 0
            and self.min_mint_credits > 0
        )


MINT_LIMIT_PER_WINDOW = 10_000_000 * 10**18  # this project's default until governance sizes it
MAX_MINT_LIMIT_PER_WINDOW = 100_000_000 * 10**18  # the hard maximum of either window's limit
MAX_PAUSE = 7 * 86_400  # seconds a pause lasts at most (`ExpiringPausable.MAX_PAUSE`)
PAUSE_COOLDOWN = 7 * 86_400  # seconds after a pause ends before the next may start
DEFAULT_MAX_JOB_DURATION = 86_400  # seconds
DEFAULT_MIN_JOB_DURATION = 600  # seconds: a job's deadline is at least this long after its opening
MAX_JOB_CREDITS = 2**40 - 1

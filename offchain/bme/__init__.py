"""bme: the off-chain half of the burn-mint equilibrium protocol (chain access, economics, CLI)."""

__version__ = "0.1.0"

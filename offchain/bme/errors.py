"""The package's exception root: every error the package raises on purpose derives from `BmeError`."""

from __future__ import annotations


class BmeError(Exception):
    """Root of the package's errors; its message is meant for the user."""


class ConfigError(BmeError):
    """Bad configuration or input given by the user."""


class ChainError(BmeError):
    """The chain could not be reached or answered unexpectedly."""


class ContractRevert(ChainError):
    """A contract call reverted; `name` and `args` are the decoded custom error."""

    def __init__(self, name: str, args: tuple[object, ...], message: str) -> None:
        super().__init__(message)
        self.name = name
        self.args_ = args


class TransactionFailed(ChainError):
    """A mined transaction has status 0."""

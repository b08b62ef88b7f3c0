"""Fixtures of the contract tests, on top of the shared ones in `tests/conftest.py`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CMP, Deployed
from tests.contracts.helpers import Governance, push


@pytest.fixture
def gov(protocol: Deployed, chain: Any) -> Governance:
    """Governance: the timelock, driven by its proposer and executor."""
    return Governance(protocol, chain)


@pytest.fixture
def wallet(protocol: Deployed, accounts: Any) -> Any:
    """A fresh account with 1 ETH for gas and nothing else: no CMP, no CRD, no allowance."""
    account = accounts.generate_test_account()
    protocol.deployer.transfer(account, 10**18)
    return account


@pytest.fixture
def fresh_price(protocol: Deployed, chain: Any) -> int:
    """A fresh $1.00 price, so calls that need the oracle pass its staleness check.

    Overrides the shared fixture of the same name for the contract tests, pushing one second after the head
    (`helpers.push`) instead of at the head's time: anvil mines every block of a wall-clock second with the
    same timestamp, so the shared `push_price` can repeat the last push's time, which the oracle refuses
    (ManualPriceOracleBadTimestamp) when a test starts within a second of the last push.
    """
    return push(protocol, chain, CMP)

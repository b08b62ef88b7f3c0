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
def fresh_dollar(protocol: Deployed, chain: Any) -> int:
    """A fresh $1.00 price (as the shared `fresh_price`, but robust on anvil: see `helpers.push`)."""
    return push(protocol, chain, CMP)

import ape
import pytest

from tests.conftest import CMP, Deployed

# Also on the in-process provider (py-evm), a second EVM beside anvil: see `make test`.
pytestmark = pytest.mark.inprocess


def test_burn_mints_credits_at_the_oracle_price_less_spread(protocol: Deployed, fresh_price: int) -> None:
    user = protocol.users[0]
    protocol.bme.burn(100 * CMP, 0, sender=user)
    assert protocol.credit.balanceOf(user) == 99_750_000


def test_transfer_of_credits_between_users_reverts(protocol: Deployed, fresh_price: int) -> None:
    a, b = protocol.users[0], protocol.users[1]
    protocol.bme.burn(100 * CMP, 0, sender=a)
    with ape.reverts(protocol.credit.ComputeCreditTransferRestricted):
        protocol.credit.transfer(b, 1, sender=a)

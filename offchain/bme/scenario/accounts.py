"""Who takes part in a replay: the deployer, relayer, feeder and treasury (the devnet's well-known accounts)
and the simulated users and operators, whose keys derive from their index so every run uses the same
addresses."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from eth_hash.auto import keccak

from bme.chain.devnet import devnet_keys
from bme.chain.fast_signer import Key


@cache
def _well_known() -> tuple[Key, ...]:
    return tuple(Key.from_hex(k) for k in devnet_keys(4))


@cache
def derived_key(role: str, index: int) -> Key:
    """The key of simulated participant `index` of `role` ("user" or "operator"): public, devnets only."""
    return Key(keccak(f"bme scenario {role} {index}".encode()))


@dataclass(frozen=True)
class Accounts:
    """Every account of a replay."""

    deployer: Key
    relayer: Key
    feeder: Key
    treasury: Key
    users: tuple[Key, ...]
    operators: tuple[Key, ...]

    @property
    def simulated(self) -> tuple[Key, ...]:
        """Users and operators: the accounts a devnet must fund with ether."""
        return self.users + self.operators


def scenario_accounts(users: int, operators: int) -> Accounts:
    deployer, relayer, feeder, treasury = _well_known()
    return Accounts(
        deployer,
        relayer,
        feeder,
        treasury,
        tuple(derived_key("user", i) for i in range(users)),
        tuple(derived_key("operator", i) for i in range(operators)),
    )

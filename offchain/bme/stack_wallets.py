"""The local stack's accounts as named wallets, so that `bme ask --wallet alice` works in another terminal.

The stack's users and operator are devnet accounts (their keys are public); they are written as keystores in
the wallet directory the wallet commands use. An existing keystore is never overwritten: one of the same name
holding the same account is kept as it is (with its own password), and one holding another account leaves its
name to it, the stack's account taking the first free `NAME-devnet`, `NAME-devnet-2`, ... instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount

from bme.user.wallets import wallet_path
from bme.wallet.keystore import KeystoreError, create_keystore, keystore_address

#: The password of the stack's keystores when `BME_PASSWORD` is not set: a devnet's keys are public anyway.
DEVNET_PASSWORD = "devnet"


@dataclass(frozen=True)
class StackWallet:
    """A keystore of the stack's: its name, role, account and what happened to an existing one."""

    name: str
    role: str
    address: str
    path: Path
    note: str = ""


def _holder(path: Path) -> str | None:
    """The address a keystore file holds, '' if it is unreadable, None if there is none."""
    if not path.exists():
        return None
    try:
        return keystore_address(path)
    except KeystoreError:
        return ""


def import_wallet(name: str, role: str, account: LocalAccount, directory: Path, password: str) -> StackWallet:
    """Writes `account` as wallet `name` (or the first free suffixed name) in `directory`."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    candidates = [name, f"{name}-devnet", *(f"{name}-devnet-{i}" for i in range(2, 100))]
    for candidate in candidates:
        path = wallet_path(candidate, directory)
        holder = _holder(path)
        if holder == account.address:
            note = "" if candidate == name else f"wallet {name} holds another account"
            return StackWallet(
                candidate, role, account.address, path, _join(note, "kept, with its own password")
            )
        if holder is None:
            create_keystore(path, password, bytes(account.key))
            note = "" if candidate == name else f"wallet {name} holds another account: not overwritten"
            return StackWallet(candidate, role, account.address, path, note)
    raise KeystoreError(f"no free wallet name for the stack's {name} in {directory}")


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)

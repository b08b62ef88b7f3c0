"""Encrypted keystores (Web3 Secret Storage v3, scrypt) through eth-account: create, read the address, unlock.

A private key never touches the disk in the clear, and never comes from a command line: the password comes
from the caller (a prompt, or the `BME_PASSWORD` environment variable in the CLI). Keystores written by geth,
foundry's `cast wallet` or any other v3 tool load the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from bme.errors import ConfigError

#: The environment variable the CLI reads a keystore's password from, before prompting.
PASSWORD_ENV = "BME_PASSWORD"


class KeystoreError(ConfigError):
    """A keystore is missing, unreadable, or the password does not open it."""


class WrongPassword(KeystoreError):
    """The password does not decrypt the keystore."""


def create_keystore(path: Path, password: str, private_key: bytes | str | None = None) -> str:
    """Encrypts `private_key` (a new random key when None) into a keystore at `path`; returns its address.

    The file is created readable by its owner only, and an existing file is never overwritten.
    """
    if not password:
        raise KeystoreError("a keystore needs a non-empty password")
    account = Account.from_key(private_key) if private_key is not None else Account.create()
    data = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeystoreError(f"{path} exists already: refusing to overwrite a keystore") from None
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return str(account.address)


def read_password(*, confirm: bool = False, prompt: str = "keystore password") -> str:
    """The keystore password: `BME_PASSWORD` when set, else a hidden prompt (typed twice when `confirm`)."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        import typer

        password = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return password


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeystoreError(f"no keystore at {path}") from None
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"cannot read the keystore {path}: {exc}") from None
    if not isinstance(data, dict) or ("crypto" not in data and "Crypto" not in data):
        raise KeystoreError(f"{path} is not a keystore (no 'crypto' section)")
    return data


def keystore_address(path: Path) -> str:
    """The checksummed address a keystore holds, read without its password (v3 stores it in clear)."""
    data = _read(path)
    address = data.get("address")
    if not isinstance(address, str):
        raise KeystoreError(f"{path} does not record its address: unlock it to know the account")
    try:
        return str(to_checksum_address(address if address.startswith("0x") else "0x" + address))
    except ValueError:
        raise KeystoreError(f"{path} records a malformed address {address!r}") from None


def load_account(path: Path, password: str) -> LocalAccount:
    """The account in the keystore at `path`, decrypted with `password`."""
    data = _read(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword(f"wrong password for the keystore {path}") from None
        raise KeystoreError(f"cannot decrypt the keystore {path}: {exc}") from None
    account: LocalAccount = Account.from_key(key)
    return account

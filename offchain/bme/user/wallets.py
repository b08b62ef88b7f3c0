"""The wallet directory: keystores named `<name>.json`, found by name or by path, unlocked by the CLI's rules.

A wallet is a Web3 Secret Storage v3 keystore (`bme.wallet.keystore`). Wallets live in one directory
(`--dir`, `BME_WALLET_DIR`, default `~/.bme/wallets`); the commands that pay or sign name a wallet with
`--wallet` (`WalletOpt`) and unlock it through `resolve_wallet(...).unlock()`, which takes the password from
`BME_PASSWORD` or a hidden prompt, as every command of `bme` does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount

from bme.errors import ConfigError
from bme.wallet.keystore import KeystoreError, keystore_address, load_account, read_password

WALLET_DIR_ENV = "BME_WALLET_DIR"
DEFAULT_WALLET_DIR = Path("~/.bme/wallets")
KEYSTORE_SUFFIX = ".json"
#: The wallet commands sign with when none is named.
DEFAULT_WALLET = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

WalletDirOpt = Annotated[
    Path,
    typer.Option("--dir", envvar=WALLET_DIR_ENV, help=f"The wallet directory [{WALLET_DIR_ENV}]."),
]
WalletOpt = Annotated[
    str,
    typer.Option(
        "--wallet",
        "-w",
        envvar="BME_WALLET",
        help="A wallet's name in the wallet directory, or a keystore's path [BME_WALLET].",
    ),
]


def wallet_dir(directory: Path | None = None) -> Path:
    """The wallet directory: `directory`, else `BME_WALLET_DIR`, else the default; `~` expanded."""
    if directory is None:
        directory = Path(os.environ.get(WALLET_DIR_ENV) or DEFAULT_WALLET_DIR)
    return directory.expanduser()


def check_name(name: str) -> str:
    """`name` if it can name a wallet: 1 to 64 letters, digits, '.', '_' or '-', not starting with a sign,
    and not ending in '.json' (which would read as a path)."""
    if not _NAME.fullmatch(name) or name.endswith(KEYSTORE_SUFFIX):
        raise ConfigError(
            f"{name!r} is not a wallet name: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def wallet_path(name: str, directory: Path | None = None) -> Path:
    """Where the wallet `name` is (or would be) stored."""
    return wallet_dir(directory) / f"{check_name(name)}{KEYSTORE_SUFFIX}"


def _is_path(name_or_path: str) -> bool:
    return (
        os.sep in name_or_path
        or "/" in name_or_path
        or name_or_path.startswith("~")
        or name_or_path.endswith(KEYSTORE_SUFFIX)
    )


@dataclass(frozen=True)
class Wallet:
    """A keystore, by its path; `name` is its name in the wallet directory, if it was found there."""

    path: Path
    name: str | None = None

    @property
    def address(self) -> str:
        """The checksummed address, read without the password."""
        return keystore_address(self.path)

    @property
    def label(self) -> str:
        """How to mention the wallet to its owner: its name, else its path."""
        return self.name if self.name is not None else str(self.path)

    def unlock(self, password: str | None = None) -> LocalAccount:
        """The account, decrypted with `password`, else with `BME_PASSWORD` or a hidden prompt.

        Raises `bme.wallet.keystore.WrongPassword` (a `ConfigError`) when the password does not open it.
        """
        if password is None:
            password = read_password(prompt=f"password of wallet {self.label}")
        return load_account(self.path, password)


def resolve_wallet(name_or_path: str, directory: Path | None = None) -> Wallet:
    """The wallet `name_or_path` names: a keystore path when it contains a '/', starts with '~' or ends in
    '.json'; otherwise a name in the wallet directory (`directory`, `BME_WALLET_DIR` or the default).

    Raises `ConfigError` when there is no such keystore.
    """
    if _is_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise KeystoreError(f"no keystore at {path}")
        return Wallet(path)
    path = wallet_path(name_or_path, directory)
    if not path.is_file():
        raise KeystoreError(
            f"no wallet named {name_or_path!r} in {path.parent} (`bme wallet list` shows the wallets there)"
        )
    return Wallet(path, name_or_path)


def choose_wallet(wallet: str | None, keystore: Path | None, directory: Path | None = None) -> Wallet:
    """The wallet a command signs with: `--keystore FILE` or `--wallet NAME|PATH` (`resolve_wallet`), not
    both; with neither, the wallet named `default`, as the user commands default to.

    Commands that took only a keystore path keep taking it; a name reads the wallet directory as `bme ask`
    and `bme wallet` do.
    """
    if wallet is not None and keystore is not None:
        raise ConfigError(f"give --wallet ({wallet}) or --keystore ({keystore}), not both")
    if keystore is not None:
        path = keystore.expanduser()
        if not path.is_file():
            raise KeystoreError(f"no keystore at {path}")
        return Wallet(path)
    if wallet is None:
        try:
            return resolve_wallet(DEFAULT_WALLET, directory)
        except KeystoreError as exc:
            raise KeystoreError(f"{exc}; or pass --wallet NAME or --keystore FILE") from None
    return resolve_wallet(wallet, directory)


@dataclass(frozen=True)
class WalletEntry:
    """A keystore file of the wallet directory: its address, or why it could not be read."""

    name: str
    path: Path
    address: str | None
    problem: str | None = None


def list_wallets(directory: Path | None = None) -> list[WalletEntry]:
    """Every `<name>.json` of the wallet directory, by name, read without a password."""
    root = wallet_dir(directory)
    if not root.is_dir():
        return []
    entries: list[WalletEntry] = []
    for path in sorted(root.glob(f"*{KEYSTORE_SUFFIX}")):
        name = path.name.removesuffix(KEYSTORE_SUFFIX)
        try:
            entries.append(WalletEntry(name, path, keystore_address(path)))
        except KeystoreError as exc:
            entries.append(WalletEntry(name, path, None, str(exc)))
    return entries


#: The word counts of a BIP-39 mnemonic.
MNEMONIC_WORDS = (12, 15, 18, 21, 24)


def account_from_secret(secret: str, index: int = 0) -> LocalAccount:
    """The account of `secret`: a private key (64 hex digits, with or without 0x) or a BIP-39 mnemonic, whose
    account `index` is taken on Ethereum's standard path m/44'/60'/0'/0/index (as MetaMask, geth and foundry).

    Error messages never repeat the secret.
    """
    from eth_account import Account

    text = secret.strip()
    words = text.split()
    if len(words) in MNEMONIC_WORDS:
        if not 0 <= index < 2**31:
            raise ConfigError(f"the account index must be 0 to {2**31 - 1} ({index} given)")
        Account.enable_unaudited_hdwallet_features()
        try:
            account: LocalAccount = Account.from_mnemonic(
                " ".join(words), account_path=f"m/44'/60'/0'/0/{index}"
            )
        except Exception:  # eth-account raises several types for a bad checksum or unknown words
            raise ConfigError(
                f"the {len(words)} words given are not a valid BIP-39 mnemonic (checksum or unknown word)"
            ) from None
        return account
    hexdigits = text.removeprefix("0x").removeprefix("0X")
    if len(words) != 1 or not re.fullmatch(r"[0-9a-fA-F]{64}", hexdigits):
        raise ConfigError(
            "expected a private key (64 hex digits) or a BIP-39 mnemonic "
            f"({', '.join(map(str, MNEMONIC_WORDS))} words)"
        )
    try:
        account = Account.from_key(bytes.fromhex(hexdigits))
    except (ValueError, TypeError):
        raise ConfigError("the private key is out of range for secp256k1") from None
    return account

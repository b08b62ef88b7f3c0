"""`bme wallet new|import|list|balance` and `resolve_wallet`: keystores in a wallet directory, secrets never
in the clear, never on a command line; balances read from a devnet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from bme import display
from bme.chain.devnet import DEVNET_MNEMONIC, devnet_keys
from bme.errors import ConfigError
from bme.user.wallets import account_from_secret, list_wallets, resolve_wallet, wallet_dir
from bme.wallet.keystore import KeystoreError, WrongPassword, load_account

from .conftest import PASSWORD, Devnet, bme, quick_keystore


def test_new_prompts_twice_for_the_password_and_writes_an_encrypted_keystore(tmp_path: Path) -> None:
    wallets = tmp_path / "wallets"
    # The confirmation does not match at first: the prompt asks again.
    r = bme("wallet", "new", "alice", "--dir", str(wallets), input=f"one\ntwo\n{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output + r.stderr
    assert "do not match" in r.output and PASSWORD not in r.output
    path = wallets / "alice.json"
    assert path.stat().st_mode & 0o777 == 0o600 and wallets.stat().st_mode & 0o777 == 0o700
    wallet = resolve_wallet("alice", wallets)
    assert f"wallet alice: {wallet.address}" in r.output and f"keystore {path}" in r.output
    account = wallet.unlock(PASSWORD)
    assert account.address == wallet.address
    assert account.key.hex().removeprefix("0x") not in path.read_text()


@pytest.mark.usefixtures("cheap_scrypt")
def test_new_refuses_to_overwrite_before_asking_for_a_password(tmp_path: Path) -> None:
    env = {"BME_WALLET_DIR": str(tmp_path), "BME_PASSWORD": PASSWORD}
    assert bme("wallet", "new", "alice", env=env).exit_code == 0
    before = (tmp_path / "alice.json").read_bytes()
    r = bme("wallet", "new", "alice", env={"BME_WALLET_DIR": str(tmp_path)})  # no password, no input
    assert isinstance(r.exception, KeystoreError) and "refusing to overwrite" in str(r.exception)
    assert "password" not in r.output
    r = bme("wallet", "import", "alice", input=devnet_keys(1)[0], env=env)
    assert isinstance(r.exception, KeystoreError) and "refusing to overwrite" in str(r.exception)
    assert (tmp_path / "alice.json").read_bytes() == before


def test_import_reads_the_key_from_stdin_never_from_arguments(tmp_path: Path) -> None:
    key = devnet_keys(2)[1]
    expected = Account.from_key(key).address
    env = os.environ | {"BME_WALLET_DIR": str(tmp_path), "BME_PASSWORD": PASSWORD}
    run = [sys.executable, "-m", "bme.cli.main", "wallet", "import"]

    # A real process, the key on a pipe: the keystore holds it encrypted.
    r = subprocess.run([*run, "bob"], input=key + "\n", capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    assert f"wallet bob: {expected}" in r.stdout and key.removeprefix("0x") not in r.stdout + r.stderr
    stored = (tmp_path / "bob.json").read_text()
    assert key.removeprefix("0x") not in stored
    assert load_account(tmp_path / "bob.json", PASSWORD).address == expected

    # There is no argument to put a key in: an extra argument is a usage error, and nothing is written.
    r = subprocess.run([*run, "carol", key], input="", capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 2 and "unexpected extra argument" in r.stderr.lower()
    assert not (tmp_path / "carol.json").exists()


@pytest.mark.usefixtures("cheap_scrypt")
def test_import_of_a_mnemonic_takes_the_standard_derivation_path(tmp_path: Path) -> None:
    env = {"BME_WALLET_DIR": str(tmp_path), "BME_PASSWORD": PASSWORD}
    expected = [Account.from_key(k).address for k in devnet_keys(3)]
    r = bme("wallet", "import", "dev0", input=DEVNET_MNEMONIC + "\n", env=env)
    assert r.exit_code == 0, r.output
    r = bme("wallet", "import", "dev2", "--index", "2", input=DEVNET_MNEMONIC, env=env)
    assert r.exit_code == 0, r.output
    assert [e.address for e in list_wallets(tmp_path)] == [expected[0], expected[2]]
    # The same account again: imported, with a note.
    r = bme("wallet", "import", "again", input=DEVNET_MNEMONIC, env=env)
    assert r.exit_code == 0 and "note: wallet dev0 holds the same account" in r.stderr


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "expected a private key"),
        ("0x1234", "expected a private key"),
        ("zz" * 32, "expected a private key"),
        ("00" * 32, "out of range"),
        ("test " * 11 + "test", "not a valid BIP-39 mnemonic"),
    ],
)
def test_a_bad_secret_is_refused_without_being_repeated(tmp_path: Path, secret: str, message: str) -> None:
    r = bme("wallet", "import", "x", input=secret, env={"BME_WALLET_DIR": str(tmp_path), "BME_PASSWORD": "p"})
    assert isinstance(r.exception, ConfigError) and message in str(r.exception)
    assert not secret.strip() or secret.strip() not in str(r.exception)
    assert not (tmp_path / "x.json").exists()


def test_list_shows_names_and_addresses_without_a_password(tmp_path: Path) -> None:
    r = bme("wallet", "list", "--dir", str(tmp_path / "none"))
    assert r.exit_code == 0 and "no wallets in" in r.output
    keys = devnet_keys(2)
    quick_keystore(tmp_path / "zed.json", "pw", keys[0])
    quick_keystore(tmp_path / "amy.json", "pw", keys[1])
    (tmp_path / "junk.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not a keystore, not listed")
    r = bme("wallet", "list", env={"BME_WALLET_DIR": str(tmp_path)})
    assert r.exit_code == 0, r.output
    a0, a1 = (Account.from_key(k).address for k in keys)
    assert r.output.splitlines() == [
        f"amy   {a1}",
        "junk  unreadable: " + f"{tmp_path / 'junk.json'} is not a keystore (no 'crypto' section)",
        f"zed   {a0}",
    ]


def test_resolve_wallet_by_name_or_path_and_the_password_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = quick_keystore(tmp_path / "alice.json", PASSWORD)
    monkeypatch.setenv("BME_WALLET_DIR", str(tmp_path))
    by_name = resolve_wallet("alice")
    assert (by_name.name, by_name.path, by_name.address) == ("alice", tmp_path / "alice.json", address)
    by_path = resolve_wallet(str(tmp_path / "alice.json"))
    assert by_path.name is None and by_path.address == address
    with pytest.raises(KeystoreError, match="no wallet named 'bob'"):
        resolve_wallet("bob")
    with pytest.raises(KeystoreError, match="no keystore at"):
        resolve_wallet(str(tmp_path / "bob.json"))
    with pytest.raises(ConfigError, match="is not a wallet name"):
        resolve_wallet("-rf")

    with pytest.raises(WrongPassword, match="wrong password"):
        by_name.unlock("not it")
    monkeypatch.setenv("BME_PASSWORD", "not it either")
    with pytest.raises(WrongPassword, match="wrong password"):
        by_name.unlock()
    monkeypatch.setenv("BME_PASSWORD", PASSWORD)
    assert by_name.unlock().address == address

    monkeypatch.delenv("BME_WALLET_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wallet_dir() == tmp_path / ".bme" / "wallets"


def test_account_from_secret_accepts_keys_with_or_without_prefix() -> None:
    key = devnet_keys(1)[0]
    expected = Account.from_key(key).address
    assert account_from_secret(key).address == expected
    assert account_from_secret("  " + key.removeprefix("0x").upper() + "\n").address == expected


def test_balance_by_name_and_by_address(devnet: Devnet, tmp_path: Path) -> None:
    user = devnet.user
    quick_keystore(tmp_path / "user.json", PASSWORD, user.key)
    devnet.fresh_price()
    p = devnet.protocol
    tokens = p.token.functions.balanceOf(user.address).call()
    credits = p.credit.functions.balanceOf(user.address).call()
    eth = devnet.client.w3.eth.get_balance(user.address)
    r = bme("wallet", "balance", "user", "--dir", str(tmp_path), env=devnet.env())
    assert r.exit_code == 0, r.output + repr(r.exception)
    lines = r.output.splitlines()
    assert lines[0] == f"{user.address} (wallet user)"
    dollars = tokens * 137 // 100 // 10**12  # at $1.37, in micro-dollars
    assert lines[1].startswith(f"  CMP {display.cmp(tokens)} = ${dollars / 10**6:,.2f} at $1.37 per CMP")
    assert lines[2] == f"  CRD {display.crd(credits)}"
    assert lines[3] == f"  ETH {display.eth(eth)} (for gas)"

    r = bme("wallet", "balance", user.address.lower(), env=devnet.env())
    assert r.exit_code == 0 and r.output.splitlines()[0] == user.address
    r = bme("wallet", "balance", "nobody", "--dir", str(tmp_path), env=devnet.env())
    assert isinstance(r.exception, KeystoreError) and "no wallet named 'nobody'" in str(r.exception)

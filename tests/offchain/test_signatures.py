"""The hot-path signatures agree with eth-account's, byte for byte, and refuse what is no signature."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st

from bme.signatures import Signer, personal_digest, recover_address

pytestmark = pytest.mark.pure


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_signing_and_recovery_match_eth_account(key: bytes, message: bytes) -> None:
    if not 0 < int.from_bytes(key, "big") < 2**256 - 2**32 - 977:
        return
    account = Account.from_key(key)
    expected = account.sign_message(encode_defunct(primitive=message))
    digest = personal_digest(message)
    assert digest == bytes(expected.message_hash)
    signature = Signer(key).sign(digest)
    assert signature == bytes(expected.signature)
    assert recover_address(digest, signature) == account.address
    assert recover_address(digest, signature[:64] + bytes([signature[64] - 27])) == account.address


@pytest.mark.parametrize(
    "signature",
    [
        b"\x00" * 65,  # r = s = 0
        b"\xff" * 64 + b"\x1b",  # r, s beyond the curve order
        b"\x01" * 64 + b"\x05",  # v neither 27/28 nor 0/1
        b"\x01" * 64,  # too short
    ],
)
def test_what_is_no_signature_is_refused(signature: bytes) -> None:
    with pytest.raises(ValueError):
        recover_address(b"\x11" * 32, signature)

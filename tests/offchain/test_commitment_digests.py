"""The relayer's hand-built EIP-712 digests are the ones a wallet signs from the full typed data."""

from __future__ import annotations

import pytest
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from bme.commitment import Domain, read_message, reveal_message, typed_data

pytestmark = pytest.mark.pure

UINT256 = st.integers(min_value=0, max_value=2**256 - 1)


def wallet_digest(data: dict[str, object]) -> bytes:
    signable = encode_typed_data(full_message=data)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@settings(max_examples=30, deadline=None)
@given(chain_id=st.integers(1, 2**64), job_id=UINT256, spec=st.binary(min_size=32, max_size=32), at=UINT256)
def test_reveal_and_read_digests_match_the_typed_data(
    chain_id: int, job_id: int, spec: bytes, at: int
) -> None:
    domain = Domain(chain_id, "0x" + "5a" * 20)
    reveal = typed_data(domain, "Reveal", {"jobId": job_id, "specHash": spec})
    assert reveal_message(domain, job_id, spec) == wallet_digest(reveal)
    read = typed_data(domain, "ReadJob", {"jobId": job_id, "issuedAt": at})
    assert read_message(domain, job_id, at) == wallet_digest(read)


def test_values_outside_their_types_are_refused() -> None:
    domain = Domain(1, "0x" + "5a" * 20)
    with pytest.raises(ValueError):
        read_message(domain, 1, -1)
    with pytest.raises(ValueError):
        reveal_message(domain, 2**256, b"\x00" * 32)
    with pytest.raises(ValueError):
        reveal_message(domain, 1, b"\x00" * 31)

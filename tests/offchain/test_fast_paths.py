"""The hand-written fast paths equal the libraries they replace: the transaction signer (eth-account) and the
job id of the reference model (eth-abi and Keccak-256)."""

from __future__ import annotations

import os

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from bme.chain.fast_signer import Key
from bme.economics.jobs import job_id_for
from bme.economics.keccak import keccak256

pytestmark = pytest.mark.pure


def test_the_signer_signs_as_eth_account() -> None:
    for i in range(40):
        secret = os.urandom(32)
        key, account = Key(secret), Account.from_key(secret)
        assert key.address == account.address
        data = os.urandom(i * 13)
        chain_id = (31337, 131277322940537, 1)[i % 3]
        to = os.urandom(20)
        raw = key.sign_legacy(i * 1_000, 10**9 + i, 21_000 + i, to, i, data, chain_id)
        expected = account.sign_transaction(
            {
                "to": to_checksum_address(to),
                "value": i,
                "gas": 21_000 + i,
                "gasPrice": 10**9 + i,
                "nonce": i * 1_000,
                "chainId": chain_id,
                "data": data,
            }
        ).raw_transaction
        assert raw == bytes(expected)


def test_job_ids_are_the_escrows() -> None:
    for i in range(100):
        payer = to_checksum_address(os.urandom(20))
        spec = os.urandom(32 if i % 4 else i % 32)
        expected = int.from_bytes(keccak(encode(["address", "bytes32"], [payer, spec])), "big")
        assert job_id_for(payer, spec) == expected
        assert job_id_for(payer.lower(), spec) == expected
    assert keccak256(b"") == keccak(b"")

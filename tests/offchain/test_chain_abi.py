"""The hand encoders of call data and results equal eth-abi's, and refuse what eth-abi refuses."""

from __future__ import annotations

import os

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError, NonEmptyPaddingBytes
from eth_utils.address import to_checksum_address

from bme.chain.abi import calldata, function, returned, returned_struct
from bme.economics.jobs import JobStatus

pytestmark = pytest.mark.pure


def expected(contract: str, name: str, *args: object) -> bytes:
    f = function(contract, name)
    return f.selector + encode(list(f.inputs), list(args))


def test_hand_encoded_calls_equal_eth_abi() -> None:
    payer = to_checksum_address(os.urandom(20))
    cases = [
        ("JobEscrow", "burnForJob", (10**20, 25 * 10**6, (2, os.urandom(32), 2**32 - 1, 300, 2**32 - 1))),
        ("JobEscrow", "openJob", (12_345, (1, os.urandom(32), 4_000_000_000, 1, 64))),
        ("JobEscrow", "expire", (2**256 - 1,)),
        ("JobEscrow", "settle", ([(i, payer, i, 2 * i, os.urandom(32)) for i in range(5)],)),
        ("JobEscrow", "settle", ([],)),
        ("BurnMintEquilibrium", "redeem", (123, 0)),
        ("ManualPriceOracle", "pushPrice", (10**18, 10**15, 2_000_000_000)),
        ("ComputeToken", "transfer", (payer, 10**24)),
        ("EmissionSchedule", "claim", ()),
        ("OperatorRegistry", "register", (10**21, "https://node/v1", [1, 2])),
    ]
    for contract, name, args in cases:
        assert calldata(contract, name, *args) == expected(contract, name, *args), name


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError, match="uint32"):
        calldata("JobEscrow", "openJob", 5, (1, bytes(32), 2**32, 1, 1))
    with pytest.raises(ValueError, match="uint32"):
        calldata("JobEscrow", "openJob", 5, (1, bytes(32), 1, 1, 2**32))
    with pytest.raises(ValueError, match="uint16"):
        calldata("JobEscrow", "openJob", 5, (2**16, bytes(32), 1, 1, 1))
    with pytest.raises(ValueError, match="bytes32"):
        calldata("JobEscrow", "openJob", 5, (1, bytes(33), 1, 1, 1))
    with pytest.raises(ValueError, match="uint256"):
        calldata("JobEscrow", "expire", -1)


def test_hand_decoded_results_equal_eth_abi() -> None:
    data = encode(["uint256", "uint256", "uint256"], [10**18, 2_000_000_000, 5])
    assert returned("ManualPriceOracle", "latestPrice", data) == tuple(
        decode(["uint256", "uint256", "uint256"], data)
    )
    data = encode(["uint256", "uint256"], [7, 8])
    assert returned("EmissionSchedule", "claimerOf", data) == (7, 8)


def test_structs_are_decoded_by_hand_as_eth_abi_decodes_them() -> None:
    payer = to_checksum_address(os.urandom(20))
    job = (payer, 7, 2_000_000_000, 2**40 - 1, 3, 512, 2**32 - 1)
    data = encode(["(address,uint16,uint32,uint40,uint8,uint32,uint32)"], [job])
    assert returned("JobEscrow", "jobOf", data) == tuple(
        decode(["(address,uint16,uint32,uint40,uint8,uint32,uint32)"], data)
    )
    fields = returned_struct("JobEscrow", "jobOf", data)
    assert fields == {
        "payer": payer.lower(),
        "modelId": 7,
        "deadline": 2_000_000_000,
        "maxCredits": 2**40 - 1,
        "status": JobStatus.EXPIRED,
        "maxInputTokens": 512,
        "maxOutputTokens": 2**32 - 1,
    }
    operator = (10**21, 5, 0, 1, True, True)
    data = encode(["(uint128,uint48,uint48,uint8,bool,bool)"], [operator])
    assert returned_struct("OperatorRegistry", "operatorOf", data)["jailed"] is True
    with pytest.raises(TypeError, match="one struct"):
        returned_struct("OperatorRegistry", "isActive", encode(["bool"], [True]))


def test_dynamic_results_go_through_eth_abi() -> None:
    assert returned("OperatorRegistry", "endpointOf", encode(["string"], ["https://n/v1"])) == (
        "https://n/v1",
    )
    assert returned("OperatorRegistry", "modelsOf", encode(["uint16[]"], [[1, 2]])) == ((1, 2),)


def test_dirty_words_are_refused_as_eth_abi_refuses_them() -> None:
    job = bytes(12) + os.urandom(20) + bytes(3 * 32) + (260).to_bytes(32, "big") + bytes(2 * 32)
    for data in (job, bytes(11) + b"\x01" + bytes(20) + bytes(6 * 32)):
        with pytest.raises(NonEmptyPaddingBytes):
            decode(["(address,uint16,uint32,uint40,uint8,uint32,uint32)"], data)
        with pytest.raises(NonEmptyPaddingBytes):
            returned("JobEscrow", "jobOf", data)
    with pytest.raises(NonEmptyPaddingBytes):
        returned("OperatorRegistry", "isActive", (2).to_bytes(32, "big"))


def test_short_results_are_left_to_eth_abi() -> None:
    """Too few bytes for the hand decoder: eth-abi decides (it raises, or pads when not strict)."""
    short = bytes(64)
    types = ["(address,uint16,uint32,uint40,uint8,uint32,uint32)"]
    try:
        expected: object = tuple(decode(types, short))
    except DecodingError as exc:
        expected = type(exc)
    try:
        got: object = returned("JobEscrow", "jobOf", short)
    except DecodingError as exc:
        got = type(exc)
    assert got == expected

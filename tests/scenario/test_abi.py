"""The hand encoders of call data and results equal eth-abi's, and refuse what eth-abi refuses."""

from __future__ import annotations

import os

import pytest
from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address

from bme.scenario.abi import _function, calldata, returned

pytestmark = pytest.mark.pure


def expected(contract: str, name: str, *args: object) -> bytes:
    selector, inputs, *_ = _function(contract, name)
    return selector + encode(list(inputs), list(args))


def test_hand_encoded_calls_equal_eth_abi() -> None:
    payer = to_checksum_address(os.urandom(20))
    cases = [
        ("JobEscrow", "burnForJob", (10**20, 25 * 10**6, 2, os.urandom(32), 2**32 - 1)),
        ("JobEscrow", "openJob", (1, 12_345, os.urandom(32), 4_000_000_000)),
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
        calldata("JobEscrow", "openJob", 1, 5, bytes(32), 2**32)
    with pytest.raises(ValueError, match="uint16"):
        calldata("JobEscrow", "openJob", 2**16, 5, bytes(32), 1)
    with pytest.raises(ValueError, match="bytes32"):
        calldata("JobEscrow", "openJob", 1, 5, bytes(33), 1)
    with pytest.raises(ValueError, match="uint256"):
        calldata("JobEscrow", "expire", -1)


def test_hand_decoded_results_equal_eth_abi() -> None:
    data = encode(["uint256", "uint256", "uint256"], [10**18, 2_000_000_000, 5])
    assert returned("ManualPriceOracle", "latestPrice", data) == tuple(
        decode(["uint256", "uint256", "uint256"], data)
    )
    data = encode(["uint256", "uint256"], [7, 8])
    assert returned("EmissionSchedule", "claimerOf", data) == (7, 8)

"""Every custom error of the compiled contracts has a message for people, and the messages show amounts in CMP
or CRD and times as date-times: the table of `bme.chain.reverts` against the ABIs in the build artifacts."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address

from bme.chain.artifacts import artifacts
from bme.chain.reverts import MESSAGES, decode_revert, format_message

pytestmark = pytest.mark.pure

#: Argument names that hold an amount, a moment, or a span of time, and the formats that show each.
AMOUNT = re.compile(
    r"(balance|needed|allowance|tokens|credits|stake|earnings|requested|available|minimum|cap"
    r"|bound|actual|price|confidence)$",
    re.IGNORECASE,
)
MOMENT = re.compile(r"(At|deadline|earliest|latest|Ends|last)$")
SPAN = re.compile(r"(maxAge|Staleness|[dD]elay|Duration)$")
#: Counts of a model's tokens (a job's usage and its caps): plain numbers, not amounts of CMP.
USAGE = re.compile(r"^max(Input|Output)Tokens$|^(input|output)Tokens$")
AMOUNT_FORMATS = {"cmp", "crd", "eth", "usd", "token", "slippage"}


def _errors() -> dict[str, list[dict[str, Any]]]:
    """Every error entry of every compiled ABI, by name (an error shared by contracts is listed once)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for art in artifacts().values():
        for item in art.abi:
            if item.get("type") == "error":
                out.setdefault(item["name"], item["inputs"])
    return out


def _sample(abi_type: str) -> Any:
    """An argument of `abi_type` to fill a message with."""
    if abi_type.endswith("]"):
        return []
    if abi_type.startswith("uint"):
        return 10_025_062_656_641_604_011
    if abi_type.startswith("int"):
        return -5
    if abi_type == "address":
        return "0x" + "ab" * 20
    if abi_type == "bool":
        return True
    if abi_type.startswith("bytes"):
        return b"\x01" * int(abi_type[5:] or 32)
    return "text"


def _fields(template: str) -> dict[int, str]:
    """The argument index and format of each field of `template`."""
    return {
        int(name): spec or ""
        for _, name, spec, _ in string.Formatter().parse(template)
        if name is not None and name.isdigit()
    }


def test_every_custom_error_of_the_compiled_contracts_has_a_message() -> None:
    errors = _errors()
    assert len(errors) > 40  # the build holds the project's contracts, OpenZeppelin's errors included
    missing = sorted(set(errors) - set(MESSAGES))
    assert not missing, f"custom errors without a message in bme.chain.reverts.MESSAGES: {missing}"
    stale = sorted(set(MESSAGES) - set(errors))
    assert not stale, f"messages for errors no compiled contract has: {stale}"


def test_every_message_fills_with_its_errors_arguments() -> None:
    for name, inputs in _errors().items():
        args = tuple(_sample(i["type"]) for i in inputs)
        for function in (None, "openJob", "redeem"):
            text = format_message(MESSAGES[name], args, function=function, now=1_700_000_000)
            assert "{" not in text, (name, text)
        assert max(_fields(MESSAGES[name]), default=-1) < len(inputs), name


def test_amounts_and_times_in_messages_carry_their_unit() -> None:
    for name, inputs in _errors().items():
        fields = _fields(MESSAGES[name])
        for index, item in enumerate(inputs):
            if index not in fields or not item["type"].startswith("uint"):
                continue
            arg, spec = item["name"], fields[index]
            if USAGE.search(arg):
                assert spec == "", f"{name}: token count {arg} is shown as an amount ({spec!r})"
            elif AMOUNT.search(arg):
                assert spec in AMOUNT_FORMATS, f"{name}: amount {arg} is shown without a unit ({spec!r})"
            elif MOMENT.search(arg):
                assert spec in ("time", "ago"), f"{name}: time {arg} is shown as a number ({spec!r})"
            elif SPAN.search(arg):
                assert spec == "s", f"{name}: duration {arg} is shown without a unit ({spec!r})"


def _revert_data(signature: str, types: list[str], args: list[Any]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, args)


def test_a_shortfall_reads_in_cmp_or_in_crd_by_the_call_that_spends() -> None:
    holder = "0x" + "12" * 19 + "ab"
    data = _revert_data(
        "ERC20InsufficientBalance(address,uint256,uint256)",
        ["address", "uint256", "uint256"],
        [holder, 0, 10_025_062_656_641_604_011],
    )
    burn = decode_revert(data, function="burnForJob")
    assert burn.name == "ERC20InsufficientBalance"
    assert (
        str(burn)
        == f"{to_checksum_address(holder)} holds 0 CMP, fewer than the 10.025062656641604011 CMP needed"
    )
    credits = decode_revert(data, function="openJob")
    assert "fewer than the 10,025,062,656,641.604011 CRD needed" in str(credits)


def test_a_stale_oracle_says_how_old_its_price_is() -> None:
    data = _revert_data("BmeOracleStale(uint256,uint256)", ["uint256", "uint256"], [1_000, 30])
    revert = decode_revert("0x" + data.hex(), now=1_047)
    assert (revert.name, revert.args_) == ("BmeOracleStale", (1_000, 30))
    assert str(revert) == "the oracle price is stale (last update 47 s ago, limit 30 s)"


def test_slippage_is_in_credits_for_a_burn_and_in_tokens_for_a_redemption() -> None:
    data = _revert_data(
        "BmeSlippageExceeded(uint256,uint256)", ["uint256", "uint256"], [9_000_000, 10_000_000]
    )
    assert "would give 9 CRD, below your minimum of 10 CRD" in str(decode_revert(data, function="burn"))
    tokens = _revert_data(
        "BmeSlippageExceeded(uint256,uint256)", ["uint256", "uint256"], [10**18, 2 * 10**18]
    )
    assert "would give 1 CMP, below your minimum of 2 CMP" in str(decode_revert(tokens, function="redeem"))


def test_panics_and_unknown_data_still_say_something() -> None:
    panic = decode_revert(_revert_data("Panic(uint256)", ["uint256"], [0x11]))
    assert str(panic) == "the contract panicked: arithmetic overflowed or underflowed (code 0x11)"
    assert str(decode_revert("0xdeadbeef")) == "the transaction reverted (data deadbeef)"
    assert str(decode_revert(None)) == "the transaction reverted (data none)"

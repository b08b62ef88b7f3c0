"""Decoding of revert data into the contracts' custom errors, and their messages for users, in one place."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_utils.abi import function_signature_to_4byte_selector

from bme.chain.artifacts import artifacts
from bme.errors import ContractRevert

#: What each custom error means to a user; `{0}`, `{1}`... are the error's arguments.
MESSAGES: dict[str, str] = {
    "BmeZeroAmount": "the amount must be greater than zero",
    "BmeBelowMinimumMint": "a burn must mint at least the minimum of {1} credit units (this one: {0})",
    "BmeSlippageExceeded": "the price moved: the call would give {0}, below your minimum of {1}",
    "BmeOracleStale": "the oracle price (from time {0}) is older than the allowed {1} seconds",
    "BmeOracleNonPositive": "the oracle has no usable price",
    "BmeOracleUncertain": "the oracle is too uncertain: confidence {1} on price {0} exceeds {2} bps",
    "BmeHalted": "the protocol is halted (status {0})",
    "BmeRateLimited": "the mint limit is reached: {0} requested, {1} available in this window",
    "BmeInvalidParameters": "invalid parameters",
    "BmeNotJobEscrow": "only the job escrow may call this (caller {0})",
    "JobEscrowZeroAmount": "the amount must be greater than zero",
    "JobEscrowJobExists": "job {0:#x} already exists (same payer and request commitment)",
    "JobEscrowJobNotOpen": "job {0:#x} is not open (status {1}: 0 unknown, 2 settled, 3 expired)",
    "JobEscrowDeadlineNotReached": "job {0:#x} can be refunded only after its deadline {1}",
    "JobEscrowDeadlinePassed": "job {0:#x} passed its deadline {1}",
    "JobEscrowInvalidDeadline": "the deadline {0} must be in the future and no later than {1}",
    "JobEscrowMaxCreditsTooLarge": "a job may reserve at most 1,099,511 CRD ({0} units asked)",
    "JobEscrowModelNotListed": "model {0} is not listed in the price book",
    "JobEscrowZeroOperator": "job {0:#x}: the operator must not be the zero address",
    "JobEscrowInsufficientEarnings": "{0} has earned {1} credit units, fewer than the {2} requested",
    "JobEscrowNotBme": "only the BME core may call this (caller {0})",
    "JobEscrowInvalidEpochLength": "an epoch must last 65 s to 93,600 s ({0} given)",
    "JobEscrowInvalidEpochRange": "the epoch range {0} to {1} is reversed",
    "OperatorRegistryAlreadyRegistered": "operator {0} is already registered",
    "OperatorRegistryStakeTooLow": "a stake of {0} is below the minimum stake of {1} (CMP base units)",
    "OperatorRegistryInvalidEndpoint": "the endpoint must be 1 to 256 bytes long ({0} given)",
    "OperatorRegistryInvalidModels": "an operator must serve 1 to 32 models ({0} given)",
    "OperatorRegistryNotBonded": "operator {0} is not bonded (status {1}: 0 not registered, 2 unbonding)",
    "OperatorRegistryNotUnbonding": "operator {0} is not unbonding (status {1}: 0 not registered, 1 bonded)",
    "OperatorRegistryUnbondingNotOver": "operator {0} may withdraw only from time {1}, when unbonding ends",
    "OperatorRegistryNotRegistered": "{0} is not a registered operator",
    "OperatorRegistryUnknownOperator": "{0} never registered as an operator",
    "OperatorRegistryNotJailed": "operator {0} is not jailed",
    "OperatorRegistryZeroAmount": "the amount must be greater than zero",
    "OperatorRegistryInvalidUnbondingDelay": "the unbonding delay must be at most 365 days ({0} s given)",
    "EmissionScheduleInvalidSegment": "emission segment {0} is malformed",
    "EmissionScheduleExceedsCap": "the emission schedule could emit {0}, above its hard cap of {1}",
    "EmissionScheduleEpochNotEnded": "epoch {0} has not ended (the current epoch is {1})",
    "EmissionScheduleAlreadyClaimed": "{0} already claimed through epoch {1}: its next claim starts at {2}",
    "EmissionScheduleNothingToClaim": "nothing to claim: {0} has no rewards in epochs {1} to {2}",
    "EmissionScheduleNothingToRelease": "every finished epoch is released already (through epoch {0} - 1)",
    "ComputeCreditTransferRestricted": "CRD cannot be transferred between accounts ({0} to {1})",
    "ManualPriceOracleZeroPrice": "the price must be positive",
    "ManualPriceOracleBadTimestamp": "the price time {0} must follow the last ({1}) and not be in the future",
    "AccessControlUnauthorizedAccount": "account {0} lacks the role this call needs",
    "ERC20InsufficientBalance": "{0} holds {1}, fewer than the {2} needed",
    "ERC20InsufficientAllowance": "the allowance of {0} is {1}, fewer than the {2} needed",
    "EnforcedPause": "the protocol is paused",
}


@cache
def _selectors() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {
        function_signature_to_4byte_selector("Error(string)"): ("Error", ["string"]),
        function_signature_to_4byte_selector("Panic(uint256)"): ("Panic", ["uint256"]),
    }
    for art in artifacts().values():
        for item in art.abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            sig = f"{item['name']}({','.join(types)})"
            table[function_signature_to_4byte_selector(sig)] = (item["name"], types)
    return table


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def decode_revert(data: bytes | str | None) -> ContractRevert:
    """The custom error in `data`, with its user message; unknown data gives a generic revert."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data or b""
    entry = _selectors().get(raw[:4]) if len(raw) >= 4 else None
    if entry is None:
        return ContractRevert("Unknown", (), f"the transaction reverted (data {raw.hex() or 'none'})")
    name, types = entry
    args = tuple(decode(types, raw[4:]))
    template = MESSAGES.get(name)
    if name == "Error":
        message = str(args[0])
    elif template is None:
        message = f"{name}{args}"
    else:
        try:
            message = template.format(*args)
        except (IndexError, ValueError):
            message = f"{name}{args}"
    return ContractRevert(name, args, message)

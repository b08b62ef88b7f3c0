"""Decoding of revert data into the contracts' custom errors, and their messages for people, in one place.

Every custom error any compiled contract can revert with has a message here (a test compares this table with
the errors of the compiled ABIs). A message's fields are the error's arguments, `{0}`, `{1}`...; a field's
format says what the argument is, so that people read amounts in CMP or CRD and times as local date-times:

- `cmp`, `crd`, `usd`: base units of CMP (18 decimals), of CRD (6), dollars as WAD (18);
- `token`: an ERC-20 amount, CRD when the call spends credits (`openJob`), else CMP;
- `slippage`: a slippage bound's amount, CMP for `redeem` (tokens out), else CRD (credits out of a burn);
- `time`: a timestamp, as a local date-time and how far it is from the chain's time when that is known;
- `ago`: a past timestamp, as how long ago it was (the date-time when the chain's time is unknown);
- `s`: a duration in seconds; `job`: a job id as 0x and 64 hex digits; `hex`: bytes or a number in hex;
- `status`, `jobstatus`, `opstatus`: the BME core's, a job's and an operator's status by name;
- `role`: an access-control role by its name (`GOVERNOR_ROLE`), when it is one of the contracts'.
"""

from __future__ import annotations

import string
from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak

from bme import display
from bme.chain.abi import abi_type, selector, signature
from bme.chain.artifacts import artifacts
from bme.economics.jobs import JobStatus
from bme.economics.status import STATUS_NAMES
from bme.errors import ContractRevert

_ORACLE_STALE = "the oracle price is stale (last update {0:ago}, limit {1:s})"

#: What each custom error means to a person; `{0}`, `{1}`... are the error's arguments (formats: see above).
MESSAGES: dict[str, str] = {
    # BME core
    "BmeZeroAmount": "the amount must be greater than zero",
    "BmeBelowMinimumMint": "a burn must mint at least {1:crd} (this one would mint {0:crd})",
    "BmeSlippageExceeded": (
        "the price moved: the call would give {0:slippage}, below your minimum of {1:slippage}"
    ),
    "BmeOracleStale": _ORACLE_STALE,
    "BmeOracleNonPositive": "the oracle has no usable price",
    "BmeOracleUncertain": (
        "the oracle is too uncertain: confidence {1:usd} on a price of {0:usd} exceeds {2} bps"
    ),
    "BmeHalted": "the protocol is halted ({0:status})",
    "BmeRateLimited": "the mint limit is reached: {0:cmp} requested, {1:cmp} available in this window",
    "BmeMintLimitTooHigh": "a mint limit of {0:cmp} per window is above the hard maximum of {1:cmp}",
    "BmeInvalidParameters": "invalid parameters",
    "BmeNotJobEscrow": "only the job escrow may call this (caller {0})",
    # Job escrow and its price book
    "JobEscrowZeroAmount": "the amount must be greater than zero",
    "JobEscrowJobExists": "job {0:job} already exists (same payer and request commitment)",
    "JobEscrowJobNotOpen": "job {0:job} is not open: it is {1:jobstatus}",
    "JobEscrowDeadlineNotReached": "job {0:job} can be refunded only after its deadline, {1:time}",
    "JobEscrowDeadlinePassed": "job {0:job} passed its deadline, {1:time}",
    "JobEscrowInvalidDeadline": "the deadline {0:time} must be from {1:time} to {2:time}",
    "JobEscrowInvalidJobDurations": (
        "a job's shortest duration must be above zero and below its longest ({0:s} and {1:s} given)"
    ),
    "JobEscrowZeroUsageCap": (
        "a job must allow at least one input and one output token ({0} input, {1} output given)"
    ),
    "JobEscrowUsageAboveCaps": (
        "job {0:job}: {1} input and {2} output tokens exceed the payer's caps of {3} and {4}"
    ),
    "JobEscrowOperatorNotActive": (
        "job {0:job}: operator {1} is not active "
        "(not registered, unbonding, jailed or below the minimum stake)"
    ),
    "JobEscrowOperatorNotServingModel": "job {0:job}: operator {1} does not list the job's model {2}",
    "JobEscrowMaxCreditsTooLarge": "a job may reserve at most 1,099,511 CRD ({0:crd} asked)",
    "JobEscrowModelNotListed": "model {0} is not listed in the price book",
    "JobEscrowZeroOperator": "job {0:job}: the operator must not be the zero address",
    "JobEscrowInsufficientEarnings": "{0} has earned {1:crd}, fewer than the {2:crd} requested",
    "JobEscrowNotBme": "only the BME core may call this (caller {0})",
    "JobEscrowInvalidEpochLength": "an epoch must last 65 s to 93,600 s ({0} s given)",
    "JobEscrowInvalidEpochRange": "the epoch range {0} to {1} is reversed",
    "ModelPriceBookUnknownModel": "model {0} is not in the price book",
    "ModelPriceBookInvalidListing": "model {0} needs a name and a price for input or output tokens",
    # Operator registry
    "OperatorRegistryAlreadyRegistered": "operator {0} is already registered",
    "OperatorRegistryStakeTooLow": "a stake of {0:cmp} is below the minimum stake of {1:cmp}",
    "OperatorRegistryInvalidEndpoint": "the endpoint must be 1 to 256 bytes long ({0} given)",
    "OperatorRegistryInvalidModels": "an operator must serve 1 to 32 models ({0} given)",
    "OperatorRegistryNotBonded": "operator {0} is not bonded: it is {1:opstatus}",
    "OperatorRegistryNotUnbonding": "operator {0} is not unbonding: it is {1:opstatus}",
    "OperatorRegistryUnbondingNotOver": "operator {0} may withdraw only from {1:time}, when unbonding ends",
    "OperatorRegistryNotRegistered": "{0} is not a registered operator",
    "OperatorRegistryUnknownOperator": "{0} never registered as an operator",
    "OperatorRegistryNotJailed": "operator {0} is not jailed",
    "OperatorRegistryZeroAmount": "the amount must be greater than zero",
    "OperatorRegistryInvalidUnbondingDelay": "the unbonding delay must be at most 365 days ({0:s} given)",
    "OperatorRegistryEscrowMismatch": "the job escrow {0} names another operator registry",
    "OperatorRegistryInvalidRange": "epochs {0} to {1}: a range must not end before it starts",
    # Emissions
    "EmissionScheduleInvalidSegment": "emission segment {0} is malformed",
    "EmissionScheduleExceedsCap": "the emission schedule could emit {0:cmp}, above its hard cap of {1:cmp}",
    "EmissionScheduleEpochNotEnded": "epoch {0} has not ended (the current epoch is {1})",
    "EmissionScheduleAlreadyClaimed": "{0} already claimed through epoch {1}: its next claim starts at {2}",
    "EmissionScheduleNothingToClaim": "nothing to claim: {0} has no rewards in epochs {1} to {2}",
    "EmissionScheduleInChallengeWindow": "epoch {0} is in its challenge window: claimable from epoch {1}",
    "EmissionScheduleInvalidClaimDelay": "a challenge window of {0} epochs is longer than the 365 allowed",
    # Tokens and oracles
    "ComputeCreditTransferRestricted": "CRD cannot be transferred between accounts ({0} to {1})",
    "ComputeCreditUnreceivable": "CRD sent to {0} (the BME core or the job escrow) would be lost: refused",
    # Pauses (the BME core's and the escrow's)
    "PauseCooldown": "a new pause may start only at {0:time}, after the cooldown that follows the last one",
    "ManualPriceOracleZeroPrice": "the price must be positive",
    "ManualPriceOracleBadTimestamp": (
        "the price's timestamp {0:time} must follow the last one ({1:time}) and not be in the future"
    ),
    "ManualPriceOracleOverflow": "the price or its confidence is too large for the oracle's storage",
    "ManualPriceOracleStepTooLarge": (
        "the price {0:usd} is too far from the last one, {1:usd}: one push may move it at most {2} bps "
        "(push several steps)"
    ),
    "ManualPriceOracleInvalidConfig": (
        "the manual oracle's configuration is invalid: it needs an admin, a feeder, a maximum age of 1 s to "
        "2^32 - 1 s and a step bound of at most 1,000,000 bps"
    ),
    "ChainlinkPriceOracleNonPositive": "the price feed's answer {0} is not positive",
    "ChainlinkPriceOracleStale": "the price feed is stale (last update {0:ago}, limit {1:s})",
    "ChainlinkPriceOracleOutOfBounds": (
        "the price feed's answer {0} is outside the accepted range {1} to {2} (at the feed's decimals)"
    ),
    "ChainlinkPriceOracleIncompleteRound": (
        "the price feed's round {0} is incomplete: its answer is from round {1}"
    ),
    "ChainlinkPriceOracleSequencerDown": "the L2 sequencer is down: no price is trusted until it is back",
    "ChainlinkPriceOracleGracePeriod": (
        "the L2 sequencer is back since {0:time}: prices are refused for {1:s} after that"
    ),
    "ChainlinkPriceOracleInvalidConfig": "the price feed adapter's configuration is invalid",
    # OpenZeppelin: ERC-20, permit, signatures, roles, pause, timelock, arithmetic
    "ERC20InsufficientBalance": "{0} holds {1:token}, fewer than the {2:token} needed",
    "ERC20InsufficientAllowance": "the allowance of {0} is {1:token}, fewer than the {2:token} needed",
    "ERC20InvalidSender": "{0} cannot send tokens (the zero address)",
    "ERC20InvalidReceiver": "{0} cannot receive tokens (the zero address)",
    "ERC20InvalidApprover": "{0} cannot approve a spender (the zero address)",
    "SafeERC20FailedOperation": "the token {0} refused the transfer",
    "ERC20InvalidSpender": "{0} cannot be approved as a spender (the zero address)",
    "ERC2612ExpiredSignature": "the permit signature expired at {0:time}",
    "ERC2612InvalidSigner": "the permit is signed by {0}, not by the owner {1}",
    "InvalidAccountNonce": "the permit's nonce for {0} is stale: the current nonce is {1}",
    "ECDSAInvalidSignature": "the signature is invalid",
    "ECDSAInvalidSignatureLength": "the signature is {0} bytes long, not 65",
    "ECDSAInvalidSignatureS": "the signature is malleable (its s value is in the upper half)",
    "InvalidShortString": "a name is too long for the contract's short-string storage",
    "StringTooLong": "the text {0!r} is too long",
    "AccessControlUnauthorizedAccount": "account {0} lacks the role {1:role} this call needs",
    "AccessControlBadConfirmation": "a role can be renounced only by the account holding it",
    "CheckpointUnorderedInsertion": "a stake checkpoint cannot be written before the last one",
    "SafeCastOverflowedUintDowncast": "the value {1} does not fit {0} bits",
    "EnforcedPause": "the protocol is paused",
    "ExpectedPause": "the protocol is not paused",
    "TimelockInvalidOperationLength": (
        "the batch has {0} targets, {1} payloads and {2} values: they must match"
    ),
    "TimelockInsufficientDelay": "a delay of {0:s} is below the timelock's minimum of {1:s}",
    "TimelockUnexpectedOperationState": "timelock operation {0:hex} is not in the state this call needs",
    "TimelockUnexecutedPredecessor": "timelock operation {0:hex}, which must run first, has not run",
    "TimelockUnauthorizedCaller": "{0} may not call the timelock directly",
    "FailedCall": "a call to another contract failed",
}

#: Functions whose ERC-20 amounts are credits (CRD): they burn the payer's credits, not CMP.
CREDIT_SPENDERS = frozenset({"openJob"})
#: Functions whose slippage bound is in CMP (a minimum of tokens out); others bound credits out of a burn.
TOKEN_SLIPPAGE = frozenset({"redeem"})

_PANICS = {
    0x01: "an assertion failed",
    0x11: "arithmetic overflowed or underflowed",
    0x12: "division by zero",
    0x21: "a value is out of its enum's range",
    0x22: "bad storage encoding",
    0x31: "pop from an empty array",
    0x32: "an index is out of bounds",
    0x41: "out of memory",
    0x51: "a call to an uninitialised function",
}
_OPERATOR_STATUS = ("not registered", "bonded", "unbonding")
#: The access-control roles of the contracts and of OpenZeppelin's timelock: `keccak256(name)`, and 0 for the
#: default admin role.
_ROLE_NAMES = (
    "GOVERNOR_ROLE",
    "PAUSER_ROLE",
    "MINTER_ROLE",
    "MINTER_ADMIN_ROLE",
    "FEEDER_ROLE",
    "RELAYER_ROLE",
    "SLASHER_ROLE",
    "EMITTER_ROLE",
    "EMITTER_ADMIN_ROLE",
    "PROTOCOL_ROLE",
    "PROPOSER_ROLE",
    "EXECUTOR_ROLE",
    "CANCELLER_ROLE",
)


@cache
def _roles() -> dict[bytes, str]:
    return {keccak(text=name): name for name in _ROLE_NAMES} | {bytes(32): "DEFAULT_ADMIN_ROLE"}


def _named(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else f"status {value}"


def _job_status(value: int) -> str:
    """A job's on-chain status by name ("open"); no status is a job the escrow does not know."""
    try:
        status = JobStatus(value)
    except ValueError:
        return f"status {value}"
    return "unknown (no such job)" if status == JobStatus.NONE else status.name.lower()


class _Fields(string.Formatter):
    """Formats an error's arguments by what they are (the format specs listed in the module's docstring)."""

    def __init__(self, function: str | None, now: int | None) -> None:
        super().__init__()
        self.function = function
        self.now = now

    def format_field(self, value: Any, format_spec: str) -> str:
        match format_spec:
            case "cmp":
                return display.cmp(value)
            case "crd":
                return display.crd(value)
            case "eth":
                return display.eth(value)
            case "usd":
                return display.usd(value, 18)
            case "token":
                return display.crd(value) if self.function in CREDIT_SPENDERS else display.cmp(value)
            case "slippage":
                return display.cmp(value) if self.function in TOKEN_SLIPPAGE else display.crd(value)
            case "time":
                return display.when(value, self.now)
            case "ago":
                return display.local_time(value) if self.now is None else display.relative(value, self.now)
            case "s":
                return display.duration(value)
            case "job":
                return f"0x{int(value):064x}"
            case "hex":
                return "0x" + (bytes(value).hex() if isinstance(value, bytes) else f"{int(value):x}")
            case "status":
                return STATUS_NAMES.get(value, f"status {value}")
            case "jobstatus":
                return _job_status(value)
            case "opstatus":
                return _named(_OPERATOR_STATUS, value)
            case "role":
                return _roles().get(bytes(value), "0x" + bytes(value).hex())
        if not format_spec and isinstance(value, str) and is_hex_address(value):
            return to_checksum_address(value)  # eth-abi decodes addresses in lower case
        return str(super().format_field(value, format_spec))


@cache
def _selectors() -> dict[bytes, tuple[str, list[str]]]:
    table: dict[bytes, tuple[str, list[str]]] = {
        selector("Error(string)"): ("Error", ["string"]),
        selector("Panic(uint256)"): ("Panic", ["uint256"]),
    }
    for art in artifacts().values():
        for item in art.abi:
            if item.get("type") == "error":
                table[selector(signature(item))] = (item["name"], [abi_type(i) for i in item["inputs"]])
    return table


def render(name: str, args: tuple[Any, ...], *, function: str | None = None, now: int | None = None) -> str:
    """The message for people of custom error `name` with `args`, raised by a call of `function` (which
    settles the unit of some amounts) when the chain's time is `now` (for "47 s ago", "in 12 min")."""
    if name == "Error":
        return str(args[0])
    if name == "Panic":
        code = int(args[0])
        return f"the contract panicked: {_PANICS.get(code, 'an internal error')} (code 0x{code:02x})"
    template = MESSAGES.get(name)
    if template is None:
        return f"{name}{args}"
    try:
        return format_message(template, args, function=function, now=now)
    except (IndexError, ValueError, TypeError):
        return f"{name}{args}"


def format_message(
    template: str, args: tuple[Any, ...], *, function: str | None = None, now: int | None = None
) -> str:
    """`template` of `MESSAGES` filled with `args`; raises when a field does not fit its argument."""
    return _Fields(function, now).format(template, *args)


def decode_revert(
    data: bytes | str | None, *, function: str | None = None, now: int | None = None
) -> ContractRevert:
    """The custom error in `data`, with its message for people (see `render`); unknown data gives a generic
    revert."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data or b""
    entry = _selectors().get(raw[:4]) if len(raw) >= 4 else None
    if entry is None:
        return ContractRevert("Unknown", (), f"the transaction reverted (data {raw.hex() or 'none'})")
    name, types = entry
    try:
        args = tuple(decode(types, raw[4:]))
    except Exception:  # malformed data behind a known selector: say what is known
        return ContractRevert(name, (), f"the transaction reverted with {name} (undecodable arguments)")
    return ContractRevert(name, args, render(name, args, function=function, now=now))

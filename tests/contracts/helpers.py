"""Helpers shared by the contract tests: strict revert matching, governance through the timelock, chain time,
EIP-2612 permits and job bookkeeping.

`reverts` is stricter than `ape.reverts(Error)`: Ape accepts any revert when it cannot decode the error (a
custom error raised by a contract deeper in the call, on the in-process provider), so a wrong revert could
pass. Here the revert data must carry exactly the expected error's selector, and the named arguments
must match.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ape
from ape.exceptions import ContractLogicError, CustomError
from eth_abi import decode
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError as Web3ContractLogicError

from bme.chain.deploy import SMOLLM2
from bme.chain.signing import permit_typed_data
from tests.conftest import OPERATOR_ENDPOINT, OPERATOR_STAKE, Deployed

#: The job escrow's job states (IJobEscrow.JobStatus).
JOB_NONE, JOB_OPEN, JOB_SETTLED, JOB_EXPIRED = 0, 1, 2, 3
#: The BME core's statuses (CollateralStatus.Status).
HEALTHY, WARNING, HALT_CR, HALT_ORACLE = 0, 1, 2, 3
#: A timelock operation's zero predecessor.
ZERO32 = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
#: The model the deployment lists: SmolLM2, 100,000 (input) and 200,000 (output) CRD units per million tokens.
MODEL = SMOLLM2.model_id
#: The widest usage caps a job can commit to (uint32): the tests' default, so that only the tests of the caps
#: are bound by them.
UINT32_MAX = 2**32 - 1
#: JobEscrow.DEFAULT_MIN_JOB_DURATION and DEFAULT_MAX_JOB_DURATION.
MIN_JOB_DURATION, MAX_JOB_DURATION = 600, 86_400


def terms(
    spec: bytes,
    deadline: int,
    model: int = MODEL,
    max_input: int = UINT32_MAX,
    max_output: int = UINT32_MAX,
) -> tuple[int, bytes, int, int, int]:
    """A job's terms as `openJob` and `burnForJob` take them (`IJobEscrow.JobTerms`)."""
    return (model, spec, deadline, max_input, max_output)


def _normalise(value: Any) -> Any:
    """One comparable form for the values an error argument can take (accounts, addresses, bytes, ints)."""
    if hasattr(value, "address"):
        value = value.address
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return value


def _revert_data(exc: ContractLogicError) -> bytes:
    """The raw revert data of an error Ape could not decode, from the forms the two providers report it in."""
    message = exc.revert_message or ""
    # anvil, for calls: "custom error 0x<selector>: <arguments>", the arguments as text when valid UTF-8 (Ape
    # strips trailing whitespace bytes from that text, so a view's revert is better read by `call_reverts`).
    if match := re.fullmatch(r"custom error (0x[0-9a-fA-F]{8}):? ?(.*)", message, re.DOTALL):
        selector, rest = match.groups()
        hex_rest = re.fullmatch(r"(?:[0-9a-f]{64})*", rest) is not None
        return bytes(HexBytes(selector)) + (bytes.fromhex(rest) if hex_rest else rest.encode())
    # the in-process provider: the repr of a bytes object, or a hex string.
    if message[:2] in ("b'", 'b"'):
        return bytes(ast.literal_eval(message))
    try:
        return bytes(HexBytes(message))
    except ValueError as err:
        raise AssertionError(f"cannot read the revert data of {message!r}") from err


def _decode(error: Any, data: bytes, shown: Any) -> dict[str, Any]:
    abi = error.abi
    assert data[:4] == keccak(text=abi.selector)[:4], f"expected {abi.selector}, reverted with {shown!r}"
    values = decode([i.canonical_type for i in abi.inputs], data[4:])
    return {i.name: v for i, v in zip(abi.inputs, values, strict=True)}


def _error_inputs(exc: ContractLogicError, error: Any) -> dict[str, Any]:
    """The arguments of `exc`, which must be the custom error `error` (decoded by Ape or from raw data)."""
    if isinstance(exc, CustomError):
        assert exc.abi.selector == error.abi.selector, (
            f"expected {error.abi.selector}, reverted with {exc.abi.selector}"
        )
        return dict(exc.inputs)
    return _decode(error, _revert_data(exc), exc.revert_message)


def _check_inputs(error: Any, actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        assert name in actual, f"{error.abi.selector} has no argument {name!r}"
        assert _normalise(actual[name]) == _normalise(value), (
            f"{name}: expected {value!r}, got {actual[name]!r}"
        )


@contextmanager
def reverts(error: Any, **expected: Any) -> Iterator[Any]:
    """Asserts that the block reverts with the custom error `error` and, for each keyword, that argument."""
    with ape.reverts() as info:
        yield info
    _check_inputs(error, _error_inputs(info.value, error), expected)


def call_reverts(error: Any, method: Any, *args: Any, **expected: Any) -> None:
    """`reverts` for a view call `method(*args)`.

    anvil reports a call's revert data as text that Ape strips of trailing whitespace bytes (0x1e is one), so
    the raw data is read with a plain `eth_call` instead; the in-process provider's errors Ape decodes itself.
    """
    request = {"to": method.contract.address, "data": "0x" + bytes(method.encode_input(*args)).hex()}
    try:
        ape.chain.provider.web3.eth.call(request)
    except Web3ContractLogicError as err:
        if isinstance(err.data, str) and err.data.startswith("0x"):
            _check_inputs(error, _decode(error, bytes(HexBytes(err.data)), err.data), expected)
            return
    except Exception:  # the in-process provider raises its own type: let Ape decode it below
        pass
    else:
        raise AssertionError(f"{method} did not revert")
    with reverts(error, **expected):
        method(*args)


# ---------------------------------------------------------------- chain time


def head_time(chain: Any) -> int:
    return int(chain.blocks.head.timestamp)


def advance(chain: Any, seconds: int) -> int:
    """Mines a block `seconds` after the head; returns its time."""
    ts = head_time(chain) + seconds
    chain.mine(timestamp=ts)
    return ts


def next_tx_at(chain: Any, timestamp: int) -> None:
    """The next transaction is mined in a block with exactly this time."""
    chain.pending_timestamp = timestamp


def push(p: Deployed, chain: Any, price: int, confidence: int = 0) -> int:
    """Pushes `price` observed one second after the head, in a block of that time; returns that time.

    Unlike `tests.conftest.push_price`, this never reuses the head's second: anvil mines every block of a
    wall-clock second with the same timestamp, and the oracle refuses a push no later than the last one.
    """
    ts = head_time(chain) + 1
    price_at(p, chain, ts, price, confidence)
    return ts


def price_at(p: Deployed, chain: Any, timestamp: int, price: int, confidence: int = 0) -> None:
    """Pushes `price` observed at `timestamp`, in a block of that time."""
    next_tx_at(chain, timestamp)
    p.oracle.pushPrice(price, confidence, timestamp, sender=p.deployer)


# ---------------------------------------------------------------- governance


@dataclass
class Governance:
    """Changes made the only way they can be: scheduled on the timelock, then executed after its delay."""

    p: Deployed
    chain: Any
    _salt: int = field(default=0)

    @property
    def delay(self) -> int:
        return int(self.p.timelock.getMinDelay())

    def schedule(self, method: Any, *args: Any) -> tuple[str, bytes, bytes]:
        """Schedules `method(*args)`; returns (target, data, salt) for `execute_scheduled`."""
        self._salt += 1
        target, data, salt = (
            method.contract.address,
            bytes(method.encode_input(*args)),
            self._salt.to_bytes(32),
        )
        self.p.timelock.schedule(target, 0, data, ZERO32, salt, self.delay, sender=self.p.governor_proposer)
        return target, data, salt

    def execute_scheduled(self, operation: tuple[str, bytes, bytes]) -> Any:
        target, data, salt = operation
        return self.p.timelock.execute(target, 0, data, ZERO32, salt, sender=self.p.governor_proposer)

    def execute(self, method: Any, *args: Any) -> Any:
        """Schedules `method(*args)`, lets the delay pass in chain time, executes it; returns the receipt.

        The oracle's price is stale afterwards: push a fresh one before calls that need it.
        """
        operation = self.schedule(method, *args)
        advance(self.chain, self.delay)
        return self.execute_scheduled(operation)


# ---------------------------------------------------------------- permits


def sign_permit(
    token: Any, owner: Any, spender: Any, value: int, deadline: int, chain_id: int, signer: Any = None
) -> tuple:
    """(v, r, s) of `owner`'s EIP-2612 permit, built as `bme.chain.signing.sign_permit` does for web3.

    `signer` (default: `owner`) is the account whose key signs, to forge a permit for somebody else.
    """
    typed = permit_typed_data(
        token.name(),
        token.address,
        owner.address,
        _normalise(spender),
        value,
        token.nonces(owner.address),
        deadline,
        chain_id,
    )
    signed = Account.from_key((signer or owner).private_key).sign_typed_data(full_message=typed)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


# ---------------------------------------------------------------- jobs


def spec_hash(n: int) -> bytes:
    """A distinct request commitment per `n`."""
    return keccak(text=f"request {n}")


def result_hash(n: int) -> bytes:
    return keccak(text=f"answer {n}")


def settlement(job_id: int, operator: Any, input_tokens: int, output_tokens: int, result: bytes) -> tuple:
    return (job_id, _normalise(operator), input_tokens, output_tokens, result)


def output_tokens_for(charge: int) -> int:
    """Output tokens of model 1 (200,000 CRD units per million) that cost exactly `charge` credit units."""
    assert charge * 5 < 2**32, "too large for one settlement"
    return charge * 5


def event_args(receipt: Any, event: Any) -> list[dict[str, Any]]:
    """The arguments of every `event` in `receipt`, normalised for comparison."""
    return [{k: _normalise(v) for k, v in log.event_arguments.items()} for log in event.from_receipt(receipt)]


def normalised(**kwargs: Any) -> dict[str, Any]:
    """Expected event arguments in the form `event_args` gives them."""
    return {k: _normalise(v) for k, v in kwargs.items()}


def earn(p: Deployed, chain: Any, operator: Any, payer: Any, tokens: int, charge: int, n: int) -> int:
    """`payer` burns `tokens` for a job on model 1 (at the current price) that the relayer settles, charging
    `charge` credit units to `operator`'s earnings; returns the job's id. Needs a fresh price."""
    spec = spec_hash(n)
    p.escrow.burnForJob(tokens, 0, terms(spec, head_time(chain) + 3600), sender=payer)
    job_id = int(p.escrow.jobIdFor(payer, spec))
    p.escrow.settle(
        [settlement(job_id, operator, 0, output_tokens_for(charge), result_hash(n))], sender=p.relayer
    )
    return job_id


def with_active_operators(protocol: Deployed) -> Deployed:
    """The deployment with its three operators registered, their genesis CMP as stake, serving the listed
    model: the escrow settles only to active operators that list the job's model. For the modules that settle
    jobs (as a module-scoped `protocol` override); the registry and emission tests keep an empty registry."""
    for o in protocol.operators:
        protocol.token.approve(protocol.registry.address, OPERATOR_STAKE, sender=o)
        protocol.registry.register(OPERATOR_STAKE, OPERATOR_ENDPOINT, [SMOLLM2.model_id], sender=o)
    return protocol

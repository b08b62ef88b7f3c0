"""A thin client over web3.py that signs transactions locally with pre-filled nonce and gas.

On a devnet this is several times faster than a node-side account or a framework's call loop; receipts are
polled every few milliseconds instead of web3's default 0.1 s.

Before a transaction is signed it is simulated on the pending block, the block it will be mined in (its
time, not the latest block's: on an idle devnet the latest block can be minutes old, and a stale oracle
only shows at the next block's time): without a gas limit by `eth_estimateGas`, with one by `eth_call`. A
revert is then raised with its custom error decoded, and no gas is spent. A transaction that still reverts
when mined is replayed on its block to name the reason. A node's refusals (no ETH for gas, a nonce taken,
no connection) become one-line `ChainError`s (`bme.chain.failures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import BlockIdentifier, TxParams, TxReceipt

from bme import display
from bme.chain.artifacts import artifact
from bme.chain.failures import (
    GasFundsTooLow,
    NonceTaken,
    RevertedOnChain,
    is_insufficient_funds,
    is_nonce_too_low,
    is_unsupported,
    node_message,
    unreachable,
)
from bme.chain.reverts import decode_revert
from bme.errors import ChainError, ContractRevert, TransactionFailed

GAS_MARGIN = 1.25
#: The gas of a plain ETH transfer: the estimate when a node refuses to estimate for want of funds.
TRANSFER_GAS = 21_000


@dataclass
class Sent:
    """A mined transaction."""

    tx_hash: str
    receipt: TxReceipt

    @property
    def gas_used(self) -> int:
        return int(self.receipt["gasUsed"])


class ChainClient:
    """Sends locally signed transactions and deploys the project's contracts."""

    def __init__(self, w3: Web3, poll_latency: float = 0.005, timeout: float = 60.0) -> None:
        self.w3 = w3
        self.poll_latency = poll_latency
        self.timeout = timeout
        try:
            self.chain_id = w3.eth.chain_id
            self._gas_price = max(2 * w3.eth.gas_price, 10**9)
        except Exception as exc:  # any transport failure: one clear message
            raise unreachable(self.url, exc) from None
        self._nonces: dict[str, int] = {}
        #: Where transactions are simulated: the pending block, or the latest on a node without one.
        self._simulation_block: BlockIdentifier = "pending"

    @classmethod
    def connect(cls, rpc_url: str, timeout: float = 30.0) -> ChainClient:
        """A client for the JSON-RPC endpoint at `rpc_url`."""
        return cls(Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout})))

    @property
    def url(self) -> str:
        """The node's endpoint, for messages ("the node" for an in-process provider)."""
        return str(getattr(self.w3.provider, "endpoint_uri", None) or "the node")

    @property
    def gas_price(self) -> int:
        """The gas price every transaction of this client pays."""
        return self._gas_price

    def contract(self, name: str, address: str) -> Contract:
        """The deployed contract `name` at `address`."""
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name).abi)

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(cast(Any, address), "pending")
        nonce = self._nonces[address]
        self._nonces[address] = nonce + 1
        return nonce

    def reset_nonce(self, address: str) -> None:
        """Forgets the cached nonce of `address` (after a failure or a chain reset)."""
        self._nonces.pop(address, None)

    def send(
        self,
        account: LocalAccount,
        call: ContractFunction | None = None,
        *,
        to: str | None = None,
        data: str | None = None,
        value: int = 0,
        gas: int | None = None,
        check: bool = True,
    ) -> Sent:
        """Signs and sends `call` (or a raw `to`/`data` transaction) and waits for its receipt.

        Without `gas`, the gas is estimated; with it, the call is simulated with that limit unless `check` is
        false (for a caller that measures the send's latency and checked already). Either way a transaction
        that would revert raises `ContractRevert` with the decoded custom error before anything is signed.
        One that reverts when mined raises `RevertedOnChain`, too little ETH `GasFundsTooLow`.
        """
        tx, function, what = self._transaction(account, call, to, data, value)
        if gas is None:
            gas = self.estimate(tx, function=function, what=what)
        elif check:
            self.simulate({**tx, "gas": gas}, function=function, what=what)
        tx.update(gas=gas, gasPrice=self._gas_price)
        tx_hash = self._submit(account, tx, what)
        try:
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.timeout, poll_latency=self.poll_latency
            )
        except TimeExhausted:
            self.reset_nonce(account.address)
            raise ChainError(
                f"transaction {_hex(tx_hash)} ({what}) was not mined within {self.timeout:g} s"
            ) from None
        except Exception:
            self.reset_nonce(account.address)
            raise
        if receipt["status"] != 1:
            raise self._reverted(tx, receipt, _hex(tx_hash), function)
        return Sent(tx_hash=_hex(tx_hash), receipt=receipt)

    def preflight(self, account: LocalAccount, call: ContractFunction, *, value: int = 0) -> int:
        """The gas `call` from `account` would use, checked without sending anything: a revert raises
        `ContractRevert`, a balance short of its gas (and value) `GasFundsTooLow`. For a caller that must not
        start something it cannot pay for (revealing a request before its payment)."""
        tx, function, what = self._transaction(account, call, None, None, value)
        gas = self.estimate(tx, function=function, what=what)
        balance = int(self.w3.eth.get_balance(account.address))
        needed = gas * self._gas_price + value
        if balance < needed:
            raise GasFundsTooLow(account.address, balance, needed, what)
        return gas

    def _transaction(
        self,
        account: LocalAccount,
        call: ContractFunction | None,
        to: str | None,
        data: str | None,
        value: int,
    ) -> tuple[dict[str, Any], str | None, str]:
        """The unsigned transaction, the function it calls (which settles the unit of some revert arguments)
        and what it does, for messages ("approve", "a deployment")."""
        tx: dict[str, Any] = {"from": account.address, "value": value, "chainId": self.chain_id}
        if call is not None:
            tx["to"] = call.address
            tx["data"] = call._encode_transaction_data()
            return tx, call.fn_name, call.fn_name or "a call"
        if to is not None:
            tx["to"] = to
        tx["data"] = data or "0x"
        what = "a deployment" if to is None else f"a transfer of {display.eth(value)}" if value else "a call"
        return tx, None, what

    def _submit(self, account: LocalAccount, tx: dict[str, Any], what: str) -> HexBytes:
        """Signs `tx` with the next nonce and hands it to the node; a nonce taken meanwhile by another sender
        of the same account is read again once."""
        for attempt in (1, 2):
            tx["nonce"] = self._next_nonce(account.address)
            signed = account.sign_transaction(tx)
            try:
                return self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3RPCError, ValueError) as exc:
                self.reset_nonce(account.address)
                if is_nonce_too_low(exc):
                    if attempt == 1:
                        continue
                    raise NonceTaken(
                        f"the node refused {what} from {account.address}: its nonce {tx['nonce']} is taken "
                        "(another program is sending from this account); try again"
                    ) from None
                raise self._refusal(exc, tx, what) from None
            except Exception:
                self.reset_nonce(account.address)
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def estimate(
        self, tx: dict[str, Any], *, function: str | None = None, what: str = "a transaction"
    ) -> int:
        """Gas for `tx` in the pending block, with a margin; a revert raises `ContractRevert` (its custom
        error read as a call of `function`)."""
        try:
            return int(self.w3.eth.estimate_gas(cast(TxParams, tx), self._simulation_block) * GAS_MARGIN)
        except ContractLogicError as exc:
            raise self._revert(exc, function) from None
        except (Web3RPCError, ValueError) as exc:
            if self._without_pending_block(exc):
                return self.estimate(tx, function=function, what=what)
            raise self._refusal(exc, tx, what) from None

    def simulate(
        self, tx: dict[str, Any], *, function: str | None = None, what: str = "a transaction"
    ) -> None:
        """Runs `tx` (with its gas limit) as a call in the pending block; a revert raises `ContractRevert`."""
        call = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            self.w3.eth.call(cast(TxParams, call), self._simulation_block)
        except ContractLogicError as exc:
            raise self._revert(exc, function) from None
        except (Web3RPCError, ValueError) as exc:
            if self._without_pending_block(exc):
                return self.simulate(tx, function=function, what=what)
            raise self._refusal(exc, tx, what) from None

    def _without_pending_block(self, exc: BaseException) -> bool:
        """Whether `exc` says the node cannot simulate on the pending block (eth-tester): then the latest
        block serves from now on, and the caller tries again."""
        if self._simulation_block != "pending" or not is_unsupported(exc):
            return False
        self._simulation_block = "latest"
        return True

    def _revert(
        self, exc: ContractLogicError, function: str | None, now: int | None = None
    ) -> ContractRevert:
        data = cast(Any, exc).data
        if not isinstance(data, str | bytes) or not data:
            # A revert without data (out of gas, a bare `revert()`): web3's message is all there is.
            return ContractRevert("Unknown", (), f"the transaction would revert: {node_message(exc)}")
        if now is None:
            now = self.next_timestamp()
        return decode_revert(data, function=function, now=now)

    def _refusal(self, exc: BaseException, tx: dict[str, Any], what: str) -> ChainError:
        """The node's refusal of `tx` as an error people can act on."""
        sender = str(tx["from"])
        if is_insufficient_funds(exc):
            balance = int(self.w3.eth.get_balance(cast(Any, sender)))
            gas = int(tx.get("gas") or TRANSFER_GAS)
            return GasFundsTooLow(sender, balance, gas * self._gas_price + int(tx.get("value", 0)), what)
        return ChainError(f"the node refused {what}: {node_message(exc)}")

    def _reverted(
        self, tx: dict[str, Any], receipt: TxReceipt, tx_hash: str, function: str | None
    ) -> TransactionFailed:
        """The error of a transaction mined with status 0: replayed as a call on its block, which reverts
        again with the reason (the block's time is the time the contract saw)."""
        block = receipt["blockNumber"]
        spent = f"transaction {tx_hash} reverted when mined, gas used {int(receipt['gasUsed']):,}"
        call = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}
        try:
            self.w3.eth.call(cast(TxParams, call), block)
        except ContractLogicError as exc:
            reason = self._revert(exc, function, now=self.timestamp(block))
            return RevertedOnChain(reason.name, reason.args_, f"{reason} ({spent})")
        except Exception:  # a node without history: the receipt is all there is
            pass
        return TransactionFailed(f"{spent}; replaying it gives no reason")

    def deploy(self, account: LocalAccount, name: str, *args: Any) -> Contract:
        """Deploys contract `name` with constructor `args`."""
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        data = factory.constructor(*args).data_in_transaction
        sent = self.send(account, data=data)
        address = sent.receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {name} returned no address")
        return self.w3.eth.contract(address=address, abi=art.abi)

    def timestamp(self, block: BlockIdentifier = "latest") -> int:
        """The timestamp of `block`."""
        return int(self.w3.eth.get_block(block)["timestamp"])

    def next_timestamp(self) -> int:
        """The time the next block will carry (the pending block's): the time a transaction sent now is
        judged at. On an idle devnet the latest block can be minutes older."""
        try:
            return max(self.timestamp("pending"), self.timestamp())
        except (Web3RPCError, ValueError, KeyError):  # a node without a pending block
            return self.timestamp()


def _hex(tx_hash: bytes) -> str:
    return "0x" + bytes(tx_hash).hex()

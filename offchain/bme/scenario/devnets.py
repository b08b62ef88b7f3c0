"""The two devnets a scenario replays on, behind one interface: anvil (a child process, driven over batched
JSON-RPC) and an in-process py-evm chain (eth-tester's backend, driven directly).

Time is explicit on both, so that a replay is reproducible bit for bit: the genesis block is dated
`GENESIS_TIME`, in the future of any wall clock the tool meets, every block that a plain transaction mines
(the deployment's) is one second after its parent, and a scenario's blocks carry the times the driver gives.
Blocks hold many transactions: they are sent without waiting and mined together, then their receipts are read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Literal

from web3 import Web3

from bme.chain.devnet import Anvil
from bme.chain.rpc import KeepAliveRpc
from bme.errors import ChainError
from bme.scenario.timeline import GENESIS_TIME

#: Blocks large enough for any epoch's transactions (gas limits are set per transaction, generously).
BLOCK_GAS_LIMIT = 1_000_000_000_000
#: The gas price of every scenario transaction; the base fee only falls on these nearly empty blocks.
GAS_PRICE = 10**9
#: The ether every simulated account starts with, for gas.
FUNDING = 10**24
#: Gas for a read-only call.
CALL_GAS = 30_000_000

ChainKind = Literal["anvil", "inprocess"]
CHAIN_KINDS: tuple[ChainKind, ...] = ("anvil", "inprocess")


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """A mined transaction: whether it succeeded (a revert is included with status 0), and its gas."""

    ok: bool
    gas_used: int


class Devnet(ABC):
    """A fresh local chain with explicit time, batched transactions and batched reads."""

    kind: ClassVar[ChainKind]
    chain_id: int

    @abstractmethod
    def web3(self) -> Web3:
        """A web3 connection, for the deployment (one automined transaction per block)."""

    @abstractmethod
    def nonces(self, addresses: Sequence[str]) -> list[int]:
        """The next nonce of each address."""

    @abstractmethod
    def execute(self, timestamp: int, raw_txs: Sequence[bytes]) -> list[TxOutcome]:
        """Mines one block at `timestamp` holding `raw_txs` in order; returns each one's outcome."""

    @abstractmethod
    def call_many(self, calls: Sequence[tuple[str, bytes]]) -> list[bytes]:
        """The return data of read-only calls `(to, data)` on the latest block; a revert raises ChainError."""

    @abstractmethod
    def close(self) -> None:
        """Stops the chain."""

    def __enter__(self) -> Devnet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_devnet(kind: ChainKind, funded: Sequence[str]) -> Devnet:
    """Starts a devnet of `kind` where every address in `funded` holds ether for gas."""
    if kind == "anvil":
        return AnvilDevnet(funded)
    if kind == "inprocess":
        return InProcessDevnet(funded)
    raise ChainError(f"unknown chain {kind!r}: expected one of {', '.join(CHAIN_KINDS)}")


# ---------------------------------------------------------------------------------------------- anvil


class AnvilDevnet(Devnet):
    """anvil as a child process: first-in-first-out block building, dated blocks, no size limits."""

    kind = "anvil"

    def __init__(self, funded: Sequence[str]) -> None:
        self._anvil = Anvil(
            extra_args=[
                "--timestamp",
                str(GENESIS_TIME),
                "--order",
                "fifo",
                "--gas-limit",
                str(BLOCK_GAS_LIMIT),
                "--no-request-size-limit",
                "--prune-history",  # only the latest state is read: keep no history
            ]
        ).start()
        self.chain_id = self._anvil.chain_id
        # One kept-alive connection: a scenario sends each transaction on its own (see `execute`).
        self._node = KeepAliveRpc(self._anvil.url, name="anvil")
        self._automine = True
        try:
            self._node.call("anvil_setBlockTimestampInterval", [1])
            self._node.batch([("anvil_setBalance", [a, hex(FUNDING)]) for a in funded])
        except Exception:
            self.close()
            raise

    @property
    def url(self) -> str:
        return self._anvil.url

    def web3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))

    def _manual_mining(self) -> None:
        if self._automine:
            self._node.call("evm_setAutomine", [False])
            self._automine = False

    def nonces(self, addresses: Sequence[str]) -> list[int]:
        answers = self._node.batch([("eth_getTransactionCount", [a, "pending"]) for a in addresses])
        return [int(n, 16) for n in answers]

    def execute(self, timestamp: int, raw_txs: Sequence[bytes]) -> list[TxOutcome]:
        self._manual_mining()
        # One request per transaction, never a batch: anvil serves a batch's items concurrently, so they can
        # reach its pool (and the first-in first-out block) in another order than the one chosen here.
        hashes = [self._node.call("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raw_txs]
        self._node.call("evm_mine", [timestamp])
        answers = self._node.batch(
            [
                ("eth_getBlockByNumber", ["latest", False]),
                *(("eth_getTransactionReceipt", [h]) for h in hashes),
            ]
        )
        block, receipts = answers[0], answers[1:]
        if int(block["timestamp"], 16) != timestamp:
            raise ChainError(f"anvil mined at {int(block['timestamp'], 16)}, not at {timestamp}")
        if [h.lower() for h in block["transactions"]] != [h.lower() for h in hashes]:
            raise ChainError("anvil did not mine the block's transactions in the order they were sent")
        return [TxOutcome(int(r["status"], 16) == 1, int(r["gasUsed"], 16)) for r in receipts]

    def call_many(self, calls: Sequence[tuple[str, bytes]]) -> list[bytes]:
        answers = self._node.batch(
            [
                ("eth_call", [{"to": to, "data": "0x" + data.hex(), "gas": hex(CALL_GAS)}, "latest"])
                for to, data in calls
            ]
        )
        return [bytes.fromhex(a[2:]) for a in answers]

    def close(self) -> None:
        self._node.close()
        self._anvil.stop()


# ---------------------------------------------------------------------------------------------- in-process


class InProcessDevnet(Devnet):
    """py-evm in this process (eth-tester's backend): blocks are built with `mine_all`, reads run on the head
    block's state, reverted after each call."""

    kind = "inprocess"

    def __init__(self, funded: Sequence[str]) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from eth_tester.backends.pyevm.main import get_default_genesis_params
        from eth_utils.address import to_canonical_address

        from bme.chain.devnet import devnet_keys
        from bme.chain.fast_signer import Key

        # The deployment signs with the devnet's well-known keys: they are funded at genesis as on anvil.
        dev = [Key.from_hex(k).address for k in devnet_keys(10)]
        state = {
            to_canonical_address(a): {"balance": FUNDING, "nonce": 0, "code": b"", "storage": {}}
            for a in dict.fromkeys([*dev, *funded])
        }
        params = get_default_genesis_params({"timestamp": GENESIS_TIME, "gas_limit": BLOCK_GAS_LIMIT})
        self._backend = PyEVMBackend(genesis_parameters=params, genesis_state=state)
        self._tester = EthereumTester(self._backend)
        self._reader = to_canonical_address(dev[0])
        self.chain_id = int(self._backend.chain.chain_id)

    def web3(self) -> Web3:
        from web3 import EthereumTesterProvider

        return Web3(EthereumTesterProvider(self._tester))

    def nonces(self, addresses: Sequence[str]) -> list[int]:
        from eth_utils.address import to_canonical_address

        state = self._backend.chain.get_vm().state
        return [int(state.get_nonce(to_canonical_address(a))) for a in addresses]

    def execute(self, timestamp: int, raw_txs: Sequence[bytes]) -> list[TxOutcome]:
        chain = self._backend.chain
        builder = chain.get_vm().get_transaction_builder()
        try:
            txs = [builder.decode(raw) for raw in raw_txs]
            # The pending header carries the block's time into the EVM (mine_all ignores a timestamp).
            chain.header = chain.header.copy(timestamp=timestamp)
            _, receipts, computations = chain.mine_all(txs, mix_hash=timestamp.to_bytes(32, "big"))
        except Exception as exc:  # py-evm's validation errors: a bad nonce, gas or timestamp
            raise ChainError(f"the in-process chain refused the block at {timestamp}: {exc}") from exc
        outcomes = []
        previous = 0
        for receipt, computation in zip(receipts, computations, strict=True):
            outcomes.append(TxOutcome(not computation.is_error, receipt.gas_used - previous))
            previous = receipt.gas_used
        return outcomes

    def call_many(self, calls: Sequence[tuple[str, bytes]]) -> list[bytes]:
        from eth.vm.spoof import SpoofTransaction
        from eth_utils.address import to_canonical_address

        chain = self._backend.chain
        vm = chain.get_vm(at_header=chain.get_canonical_head())
        state = vm.state
        nonce = state.get_nonce(self._reader)
        base_fee = int(getattr(state.execution_context, "base_fee_per_gas", 0) or 0)
        out = []
        for to, data in calls:
            unsigned = vm.create_unsigned_transaction(
                nonce=nonce, gas_price=base_fee, gas=CALL_GAS, to=to_canonical_address(to), value=0, data=data
            )
            snapshot = state.snapshot()
            try:
                computation = state.apply_transaction(SpoofTransaction(unsigned, from_=self._reader))
            finally:
                state.revert(snapshot)
            if computation.is_error:
                raise ChainError(f"a read of {to} reverted: {computation.error!r}")
            out.append(bytes(computation.output))
        return out

    def close(self) -> None:
        pass

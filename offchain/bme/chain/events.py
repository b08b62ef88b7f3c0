"""Event logs of the contracts, decoded from their compiled ABIs: the topic of each event and its arguments.

Logs arrive as JSON-RPC gives them (hex strings). Indexed arguments of static types and data made of static
words are decoded by hand (`bme.chain.abi`), the rest (strings, arrays) by eth-abi: the relayer decodes every
log of the escrow and the registry, and eth-abi's general decoder would cost ten times more per log. An
indexed argument of a dynamic type is its 32-byte hash, as in the log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from bme.chain.abi import abi_item, abi_type, signature, static_layout, word_decoder

#: The events the relayer acts on, by contract.
ESCROW_EVENTS = ("JobOpened", "JobSettled", "JobExpired", "ModelPriced", "ModelDelisted")
REGISTRY_EVENTS = (
    "OperatorRegistered",
    "OperatorUpdated",
    "UnbondingRequested",
    "StakeWithdrawn",
    "OperatorSlashed",
    "OperatorUnjailed",
)


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded log."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


def _raw_topic(word: bytes) -> bytes:
    return word


@dataclass(frozen=True)
class EventSpec:
    """One event of a compiled contract: its topic and how its arguments are read from a log."""

    contract: str
    name: str
    #: The first topic of its logs: keccak256 of the signature, as 0x and 64 hex digits.
    topic: str
    indexed: tuple[tuple[str, Callable[[bytes], Any]], ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    _data_decoder: Callable[[bytes], tuple[Any, ...]] | None

    def args(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        """The event's arguments from a log's `topics` (the first one being the event's) and `data`."""
        args = {
            name: fn(bytes.fromhex(topic[2:]))
            for (name, fn), topic in zip(self.indexed, topics[1:], strict=True)
        }
        if self.data_names:
            raw = bytes.fromhex(data[2:])
            fast = self._data_decoder
            values = fast(raw) if fast is not None else tuple(decode(list(self.data_types), raw))
            args.update(zip(self.data_names, values, strict=True))
        return args


@cache
def event_spec(contract: str, name: str) -> EventSpec:
    """`contract`'s event `name`, from the compiled ABI."""
    item = abi_item(contract, "event", name)
    indexed: list[tuple[str, Callable[[bytes], Any]]] = []
    data_items = []
    for i in item["inputs"]:
        if i["indexed"]:
            # An indexed argument of a dynamic type (a string, an array, a struct) is the hash of its value.
            indexed.append((i["name"], word_decoder(abi_type(i)) or _raw_topic))
        else:
            data_items.append(i)
    layout = static_layout(data_items)
    fast: Callable[[bytes], tuple[Any, ...]] | None = None
    if layout is not None:
        size, parts = layout

        def fast_data(raw: bytes) -> tuple[Any, ...]:
            if len(raw) < 32 * size:
                return tuple(decode([abi_type(i) for i in data_items], raw))  # eth-abi says what is wrong
            return tuple(fn(raw, at) for at, fn in parts)

        fast = fast_data
    return EventSpec(
        contract=contract,
        name=name,
        topic="0x" + keccak(text=signature(item)).hex(),
        indexed=tuple(indexed),
        data_names=tuple(i["name"] for i in data_items),
        data_types=tuple(abi_type(i) for i in data_items),
        _data_decoder=fast,
    )


def event_topic(contract: str, name: str) -> str:
    """The first topic of `contract`'s `name` logs, for a log filter."""
    return event_spec(contract, name).topic


class LogDecoder:
    """Turns raw logs of chosen events of deployed contracts into `Event`s; other logs are skipped."""

    def __init__(self, watched: Iterable[tuple[str, str, Sequence[str]]]) -> None:
        """`watched`: (address, contract, event names) for each contract whose events are decoded."""
        self._by_address: dict[str, dict[str, EventSpec]] = {}
        for address, contract, names in watched:
            specs = {}
            for name in names:
                try:
                    spec = event_spec(contract, name)
                except KeyError:
                    raise RuntimeError(f"{contract}'s ABI lacks the event {name}") from None
                specs[spec.topic] = spec
            self._by_address[address.lower()] = specs

    @property
    def addresses(self) -> list[str]:
        """The watched contracts' addresses (lower case), for `eth_getLogs`."""
        return list(self._by_address)

    def decode(self, log: dict[str, Any]) -> Event | None:
        """`log` (as JSON-RPC gives it) as an `Event`, or None when it is not one of the watched events."""
        specs = self._by_address.get(str(log["address"]).lower())
        topics = log.get("topics") or []
        spec = specs.get(topics[0]) if specs and topics else None
        if spec is None:
            return None
        return Event(
            spec.name,
            spec.args(topics, log["data"]),
            int(log["blockNumber"], 16),
            str(log["blockHash"]),
            str(log["transactionHash"]),
            int(log["logIndex"], 16),
        )


class EventDecoder(LogDecoder):
    """The relayer's events: the escrow's jobs and price book (`ESCROW_EVENTS`), the registry's operators
    (`REGISTRY_EVENTS`)."""

    def __init__(self, escrow: str, registry: str) -> None:
        self.escrow = escrow.lower()
        self.registry = registry.lower()
        super().__init__(
            [(self.escrow, "JobEscrow", ESCROW_EVENTS), (self.registry, "OperatorRegistry", REGISTRY_EVENTS)]
        )

"""The log decoder gives what eth-abi gives for every event the relayer watches, skips the logs of other
events and contracts, and refuses dirty words as eth-abi does."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_abi.exceptions import NonEmptyPaddingBytes
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from bme.chain.abi import abi_item, abi_type
from bme.chain.events import ESCROW_EVENTS, REGISTRY_EVENTS, EventDecoder, LogDecoder, event_topic

pytestmark = pytest.mark.pure

ESCROW = to_checksum_address(os.urandom(20))
REGISTRY = to_checksum_address(os.urandom(20))


def sample(kind: str, rng: random.Random) -> Any:
    """A random value of ABI type `kind` (the types the watched events use)."""
    if kind.endswith("[]"):
        return [sample(kind[:-2], rng) for _ in range(rng.randrange(4))]
    if kind.startswith("uint"):
        return rng.randrange(2 ** int(kind[4:] or 256))
    if kind == "address":
        return to_checksum_address(rng.randbytes(20))
    if kind == "bytes32":
        return rng.randbytes(32)
    if kind == "string":
        return "model-" + rng.randbytes(rng.randrange(40)).hex()
    raise AssertionError(f"no sample of {kind}")


def log_of(
    address: str, contract: str, name: str, rng: random.Random
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A log of `contract`'s event `name` with random arguments, as JSON-RPC gives it, and the arguments as
    eth-abi decodes them."""
    item = abi_item(contract, "event", name)
    types = [abi_type(i) for i in item["inputs"]]
    values = [sample(t, rng) for t in types]
    topics = ["0x" + keccak(text=f"{name}({','.join(types)})").hex()]
    expected: dict[str, Any] = {}
    data_types, data_values, data_names = [], [], []
    for i, kind, value in zip(item["inputs"], types, values, strict=True):
        if i["indexed"]:
            word = encode([kind], [value])
            topics.append("0x" + word.hex())
            expected[i["name"]] = decode([kind], word)[0]
        else:
            data_types.append(kind)
            data_values.append(value)
            data_names.append(i["name"])
    data = encode(data_types, data_values)
    expected.update(zip(data_names, decode(data_types, data), strict=True))
    log = {
        "address": address.lower(),
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": hex(rng.randrange(1, 10**6)),
        "blockHash": "0x" + rng.randbytes(32).hex(),
        "transactionHash": "0x" + rng.randbytes(32).hex(),
        "logIndex": hex(rng.randrange(100)),
    }
    return log, expected


def test_every_watched_event_decodes_as_eth_abi_decodes_it() -> None:
    decoder = EventDecoder(ESCROW, REGISTRY)
    rng = random.Random(5)
    watched = [(ESCROW, "JobEscrow", n) for n in ESCROW_EVENTS]
    watched += [(REGISTRY, "OperatorRegistry", n) for n in REGISTRY_EVENTS]
    for address, contract, name in watched * 20:
        log, expected = log_of(address, contract, name, rng)
        event = decoder.decode(log)
        assert event is not None
        assert (event.name, event.args) == (name, expected)
        assert event.block_number == int(log["blockNumber"], 16)
        assert (event.block_hash, event.tx_hash) == (log["blockHash"], log["transactionHash"])
        assert event.log_index == int(log["logIndex"], 16)
    assert decoder.addresses == [ESCROW.lower(), REGISTRY.lower()]


def test_other_events_and_contracts_are_skipped() -> None:
    decoder = EventDecoder(ESCROW, REGISTRY)
    rng = random.Random(6)
    log, _ = log_of(ESCROW, "JobEscrow", "EarningsRedeemed", rng)
    assert decoder.decode(log) is None
    log, _ = log_of(REGISTRY, "JobEscrow", "JobOpened", rng)  # the escrow's event from the registry
    assert decoder.decode(log) is None
    log, _ = log_of(to_checksum_address(os.urandom(20)), "JobEscrow", "JobOpened", rng)
    assert decoder.decode(log) is None
    assert decoder.decode({**log, "address": ESCROW, "topics": []}) is None


def test_topics_are_the_signatures_hashes() -> None:
    signature = "JobSettled(uint256,address,uint32,uint32,uint256,uint256,bytes32)"
    assert event_topic("JobEscrow", "JobSettled") == "0x" + keccak(text=signature).hex()


def test_dirty_words_are_refused() -> None:
    decoder = EventDecoder(ESCROW, REGISTRY)
    log, _ = log_of(ESCROW, "JobEscrow", "JobOpened", random.Random(7))
    model_topic = "0x" + (2**16).to_bytes(32, "big").hex()  # modelId is a uint16
    with pytest.raises(NonEmptyPaddingBytes):
        decoder.decode({**log, "topics": [*log["topics"][:3], model_topic]})
    dirty_deadline = bytearray(bytes.fromhex(log["data"][2:]))
    dirty_deadline[64] = 1  # deadline, the third data word, is a uint32
    with pytest.raises(NonEmptyPaddingBytes):
        decoder.decode({**log, "data": "0x" + dirty_deadline.hex()})


def test_a_contract_without_a_watched_event_is_refused() -> None:
    with pytest.raises(RuntimeError, match="lacks the event"):
        LogDecoder([(ESCROW, "JobEscrow", ("NoSuchEvent",))])

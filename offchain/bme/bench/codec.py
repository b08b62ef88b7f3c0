"""`bme bench codec`: the CPU time of the relayer's hot-path encodings through the chain layer: the call data
of a `settle` batch, and the decoding of the escrow's `JobOpened` and `JobSettled` logs as `eth_getLogs` gives
them. The logs are built with eth-abi, and every decoded one is checked against the values it was built from.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from eth_abi.abi import encode

from bme.chain.abi import abi_item, abi_type, calldata
from bme.chain.events import EventDecoder, event_topic

REPEATS = 7


def settle_rows(count: int, rng: random.Random) -> list[tuple[int, str, int, int, bytes]]:
    """`count` settlements as `JobEscrow.settle` takes them: job id, operator, token counts, result hash."""
    operator = "0x" + rng.randbytes(20).hex()
    return [
        (rng.getrandbits(256), operator, rng.randrange(2**32), rng.randrange(2**32), rng.randbytes(32))
        for _ in range(count)
    ]


def _random_value(kind: str, rng: random.Random) -> Any:
    if kind.startswith("uint"):
        return rng.randrange(2 ** int(kind[4:] or 256))
    if kind == "address":
        return "0x" + rng.randbytes(20).hex()
    if kind == "bytes32":
        return rng.randbytes(32)
    raise ValueError(f"no random {kind}")


def escrow_log(escrow: str, name: str, rng: random.Random) -> tuple[dict[str, Any], dict[str, Any]]:
    """A log of the escrow's event `name` with random arguments, as JSON-RPC gives it, and the arguments."""
    item = abi_item("JobEscrow", "event", name)
    args = {i["name"]: _random_value(abi_type(i), rng) for i in item["inputs"]}
    topics = [event_topic("JobEscrow", name)]
    data_types, data_values = [], []
    for i in item["inputs"]:
        if i["indexed"]:
            topics.append("0x" + encode([abi_type(i)], [args[i["name"]]]).hex())
        else:
            data_types.append(abi_type(i))
            data_values.append(args[i["name"]])
    log = {
        "address": escrow,
        "topics": topics,
        "data": "0x" + encode(data_types, data_values).hex(),
        "blockNumber": hex(rng.randrange(1, 2**32)),
        "blockHash": "0x" + rng.randbytes(32).hex(),
        "transactionHash": "0x" + rng.randbytes(32).hex(),
        "logIndex": hex(rng.randrange(1_000)),
    }
    return log, args


def _best_of(run: Callable[[], object], loops: int) -> float:
    """The fastest of `REPEATS` timings of `loops` runs, per run, in milliseconds."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(loops):
            run()
        best = min(best, (time.perf_counter() - started) / loops)
    return best * 1e3


def measure(batch: int = 100, logs: int = 1_000, seed: int = 1) -> dict[str, Any]:
    """Milliseconds to encode a `settle` batch of `batch` settlements and to decode `logs` escrow logs."""
    rng = random.Random(seed)
    escrow = "0x" + rng.randbytes(20).hex()
    decoder = EventDecoder(escrow, "0x" + rng.randbytes(20).hex())
    rows = settle_rows(batch, rng)
    built = [escrow_log(escrow, ("JobOpened", "JobSettled")[i % 2], rng) for i in range(logs)]
    raw = [log for log, _args in built]
    for log, args in built:
        event = decoder.decode(log)
        if event is None or event.args != args:
            raise AssertionError(f"the decoder read {event} from a log of {args}")
    return {
        "settle_batch": batch,
        "settle_calldata_ms": round(_best_of(lambda: calldata("JobEscrow", "settle", rows), 50), 4),
        "logs": logs,
        "decode_logs_ms": round(_best_of(lambda: [decoder.decode(log) for log in raw], 3), 3),
    }

"""Call data for the contracts' functions from their compiled ABIs, without web3's per-call overhead.

A replay encodes a call per transaction and decodes a result per read: functions whose arguments are static
words (unsigned integers, addresses, bytes32, booleans) or one array of static tuples (`settle`) are encoded
by hand, range-checked as eth-abi would; anything else goes through eth-abi.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from bme.chain.artifacts import artifact

Encoder = Callable[[Any], bytes]
_UINT = re.compile(r"^uint(\d*)$")


def _type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def _word_encoder(kind: str) -> Encoder | None:
    """An encoder of one static word of ABI type `kind`, or None when `kind` is not one."""
    if match := _UINT.match(kind):
        bits = int(match.group(1) or 256)

        def uint(value: Any) -> bytes:
            if not isinstance(value, int) or value < 0 or value >> bits:
                raise ValueError(f"{value!r} is not a {kind}")
            return int(value).to_bytes(32, "big")

        return uint
    if kind == "address":

        def address(value: Any) -> bytes:
            raw = bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)
            if len(raw) != 20:
                raise ValueError(f"{value!r} is not an address")
            return bytes(12) + raw

        return address
    if kind == "bytes32":

        def bytes32(value: Any) -> bytes:
            if not isinstance(value, bytes | bytearray) or len(value) > 32:
                raise ValueError(f"{value!r} is not a bytes32")
            return bytes(value).ljust(32, b"\x00")

        return bytes32
    if kind == "bool":
        return lambda value: (1 if value else 0).to_bytes(32, "big")
    return None


def _args_encoder(kinds: tuple[str, ...]) -> Callable[[tuple[Any, ...]], bytes] | None:
    """A hand encoder for arguments of `kinds`, or None when eth-abi must do it."""
    words = [_word_encoder(k) for k in kinds]
    if all(w is not None for w in words):
        plain = [w for w in words if w is not None]
        return lambda args: b"".join(w(a) for w, a in zip(plain, args, strict=True))
    if len(kinds) == 1 and kinds[0].startswith("(") and kinds[0].endswith(")[]"):
        members = [_word_encoder(k) for k in kinds[0][1:-3].split(",")]
        if all(m is not None for m in members):
            fields = [m for m in members if m is not None]

            def array(args: tuple[Any, ...]) -> bytes:
                items = args[0]
                body = b"".join(f(v) for item in items for f, v in zip(fields, item, strict=True))
                return (32).to_bytes(32, "big") + len(items).to_bytes(32, "big") + body

            return array
    return None


@cache
def _function(
    contract: str, name: str
) -> tuple[bytes, tuple[str, ...], tuple[str, ...], Callable[[tuple[Any, ...]], bytes] | None, bool]:
    for item in artifact(contract).abi:
        if item.get("type") == "function" and item["name"] == name:
            inputs = tuple(_type(i) for i in item["inputs"])
            outputs = tuple(_type(o) for o in item.get("outputs", []))
            selector = keccak(text=f"{name}({','.join(inputs)})")[:4]
            static_out = all(_UINT.match(o) or o in ("address", "bool") for o in outputs)
            return selector, inputs, outputs, _args_encoder(inputs), static_out
    raise KeyError(f"{contract} has no function {name}")


def calldata(contract: str, name: str, *args: Any) -> bytes:
    """The call data of `contract.name(*args)`."""
    selector, inputs, _, fast, _ = _function(contract, name)
    if fast is not None:
        return selector + fast(args)
    return selector + encode(list(inputs), list(args))


def returned(contract: str, name: str, data: bytes) -> tuple[Any, ...]:
    """The decoded return values of `contract.name` (addresses as lowercase hex when decoded by hand)."""
    _, _, outputs, _, static_out = _function(contract, name)
    if static_out and len(data) >= 32 * len(outputs):
        values: list[Any] = []
        for i, kind in enumerate(outputs):
            word = data[32 * i : 32 * i + 32]
            if kind == "address":
                values.append("0x" + word[12:].hex())
            elif kind == "bool":
                values.append(word[-1] == 1)
            else:
                values.append(int.from_bytes(word, "big"))
        return tuple(values)
    return tuple(decode(list(outputs), data))

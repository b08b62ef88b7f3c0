"""Call data and results of the contracts' functions, derived from the compiled ABIs (`bme.chain.artifacts`).

Callers name a contract and a function and get bytes, or give bytes and get values:
`calldata("JobEscrow", "jobOf", job_id)`, `returned_struct("JobEscrow", "jobOf", data)["status"]`. Every
selector, argument layout and struct layout comes from the artifacts, so none is typed by hand elsewhere.

The relayer's settlement batches and job reads and a replay's transactions go through here thousands of
times, so simple layouts skip eth-abi's per-call overhead: arguments that are static words (unsigned
integers, addresses, fixed-size bytes, booleans) or structs of them (a job's terms), or one array of tuples of
them (`settle`), and results that
are static words or tuples of them, are encoded and decoded by hand and range-checked as eth-abi checks
them (the tests compare both byte for byte). Anything else goes through eth-abi.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import NonEmptyPaddingBytes
from eth_utils.crypto import keccak

from bme.chain.artifacts import artifact

#: One ABI item's description (an input, an output, a component), as the compiled ABI gives it.
AbiItem = dict[str, Any]
#: Encodes one static word; decodes one from 32 bytes.
WordEncoder = Callable[[Any], bytes]
WordDecoder = Callable[[bytes], Any]
ArgsEncoder = Callable[[Sequence[Any]], bytes]
ResultsDecoder = Callable[[bytes], tuple[Any, ...]]

_UINT = re.compile(r"^uint(\d*)$")
_FIXED_BYTES = re.compile(r"^bytes(\d+)$")
_ZERO_12 = bytes(12)


def abi_type(item: AbiItem) -> str:
    """The canonical type of an ABI input or output, as signatures spell it: `(uint256,address)[]` for an
    array of structs."""
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind


def signature(item: AbiItem) -> str:
    """A function's, event's or error's signature: `settle((uint256,address,uint32,uint32,bytes32)[])`."""
    return f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"


def selector(sig: str) -> bytes:
    """The four bytes that select a function or an error with signature `sig`."""
    return keccak(text=sig)[:4]


def abi_item(contract: str, kind: str, name: str) -> AbiItem:
    """The ABI entry of `contract`'s function, event or error (`kind`) `name`; an overloaded name is refused:
    nothing here knows which of its signatures is meant."""
    found = [i for i in artifact(contract).abi if i.get("type") == kind and i.get("name") == name]
    if not found:
        raise KeyError(f"{contract} has no {kind} {name}")
    if len(found) > 1:
        raise KeyError(f"{contract}'s {kind} {name} is overloaded: {[signature(i) for i in found]}")
    return found[0]


# ---------------------------------------------------------------------------------------------- static words


def word_encoder(kind: str) -> WordEncoder | None:
    """An encoder of one static word of ABI type `kind`, or None when `kind` is not one written out here."""
    if match := _UINT.match(kind):
        bits = int(match.group(1) or 256)

        def uint(value: Any) -> bytes:
            if not isinstance(value, int) or value < 0 or value >> bits:
                raise ValueError(f"{value!r} is not a {kind}")
            return int(value).to_bytes(32, "big")

        return uint
    if kind == "address":

        def address(value: Any) -> bytes:
            if isinstance(value, str):
                raw = bytes.fromhex(value[2:] if value[:2] in ("0x", "0X") else value)
            else:
                raw = bytes(value)
            if len(raw) != 20:
                raise ValueError(f"{value!r} is not an address")
            return _ZERO_12 + raw

        return address
    if match := _FIXED_BYTES.match(kind):
        size = int(match.group(1))

        def fixed_bytes(value: Any) -> bytes:
            if not isinstance(value, bytes | bytearray) or len(value) > size:
                raise ValueError(f"{value!r} is not a {kind}")
            return bytes(value).ljust(32, b"\x00")

        return fixed_bytes
    if kind == "bool":
        return lambda value: (1 if value else 0).to_bytes(32, "big")
    return None


def word_decoder(kind: str) -> WordDecoder | None:
    """A decoder of one 32-byte word of ABI type `kind` into what eth-abi gives (addresses in lower case), or
    None when `kind` is not one written out here. Dirty padding raises eth-abi's `NonEmptyPaddingBytes`."""
    if match := _UINT.match(kind):
        bits = int(match.group(1) or 256)

        def uint(word: bytes) -> int:
            value = int.from_bytes(word, "big")
            if value >> bits:
                raise NonEmptyPaddingBytes(f"{word.hex()} is not a {kind}")
            return value

        return uint
    if kind == "address":

        def address(word: bytes) -> str:
            if word[:12] != _ZERO_12:
                raise NonEmptyPaddingBytes(f"{word.hex()} is not an address")
            return "0x" + word[12:].hex()

        return address
    if match := _FIXED_BYTES.match(kind):
        size = int(match.group(1))
        padding = bytes(32 - size)

        def fixed_bytes(word: bytes) -> bytes:
            if word[size:] != padding:
                raise NonEmptyPaddingBytes(f"{word.hex()} is not a {kind}")
            return word[:size]

        return fixed_bytes
    if kind == "bool":

        def boolean(word: bytes) -> bool:
            value = int.from_bytes(word, "big")
            if value > 1:
                raise NonEmptyPaddingBytes(f"{word.hex()} is not a bool")
            return value == 1

        return boolean
    return None


#: Where each static part of a sequence sits (a byte offset) and its decoder at an offset.
Layout = list[tuple[int, Callable[[bytes, int], Any]]]


def static_layout(items: Sequence[AbiItem]) -> tuple[int, Layout] | None:
    """The in-place layout of `items` when each is a static word or a tuple of them: the words they take and
    each one's offset and decoder; None when one of them is of another type."""
    layout: Layout = []
    words = 0
    for item in items:
        if item["type"] == "tuple":
            inner = static_layout(item["components"])
            if inner is None:
                return None
            size, parts = inner

            def struct(data: bytes, at: int, parts: Layout = parts) -> tuple[Any, ...]:
                return tuple(fn(data, at + off) for off, fn in parts)

            layout.append((32 * words, struct))
            words += size
            continue
        word = word_decoder(abi_type(item))
        if word is None:
            return None

        def one(data: bytes, at: int, word: WordDecoder = word) -> Any:
            return word(data[at : at + 32])

        layout.append((32 * words, one))
        words += 1
    return words, layout


# ---------------------------------------------------------------------------------------------- functions


def _static_encoder(item: AbiItem) -> WordEncoder | None:
    """An encoder of a static word or of a struct of static words (encoded in place), or None."""
    if item["type"] != "tuple":
        return word_encoder(abi_type(item))
    members = [_static_encoder(c) for c in item["components"]]
    if not all(m is not None for m in members):
        return None
    fields = [m for m in members if m is not None]

    def struct(value: Any) -> bytes:
        return b"".join(f(v) for f, v in zip(fields, value, strict=True))

    return struct


def _args_encoder(inputs: Sequence[AbiItem]) -> ArgsEncoder | None:
    """A hand encoder of arguments `inputs`, or None when eth-abi must do it."""
    words = [_static_encoder(i) for i in inputs]
    if all(w is not None for w in words):
        plain = [w for w in words if w is not None]
        return lambda args: b"".join(w(a) for w, a in zip(plain, args, strict=True))
    if len(inputs) == 1 and inputs[0]["type"] == "tuple[]":
        members = [word_encoder(abi_type(c)) for c in inputs[0]["components"]]
        if all(m is not None for m in members):
            fields = [m for m in members if m is not None]

            def array(args: Sequence[Any]) -> bytes:
                (items,) = args
                body = b"".join(f(v) for item in items for f, v in zip(fields, item, strict=True))
                return (32).to_bytes(32, "big") + len(items).to_bytes(32, "big") + body

            return array
    return None


def _results_decoder(outputs: Sequence[AbiItem]) -> tuple[int, ResultsDecoder] | None:
    """A hand decoder of results `outputs` and the bytes it needs, or None when eth-abi must do it."""
    found = static_layout(outputs)
    if found is None:
        return None
    words, layout = found

    def results(data: bytes) -> tuple[Any, ...]:
        return tuple(fn(data, at) for at, fn in layout)

    return 32 * words, results


@dataclass(frozen=True)
class Function:
    """One function of a compiled contract: its selector and its arguments' and results' codecs."""

    contract: str
    name: str
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    #: The names of the fields of the one struct the function returns, or () when it returns something else.
    struct_fields: tuple[str, ...]
    _encode_args: ArgsEncoder | None
    _decode_results: tuple[int, ResultsDecoder] | None

    def encode(self, *args: Any) -> bytes:
        """The call data of a call with `args`."""
        if self._encode_args is not None:
            return self.selector + self._encode_args(args)
        return self.selector + encode(list(self.inputs), list(args))

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """The values the function returned in `data`."""
        fast = self._decode_results
        if fast is not None and len(data) >= fast[0]:
            return fast[1](data)
        return tuple(decode(list(self.outputs), data))


@cache
def function(contract: str, name: str) -> Function:
    """`contract`'s function `name`, from the compiled ABI."""
    item = abi_item(contract, "function", name)
    outputs = item.get("outputs", [])
    one_struct = len(outputs) == 1 and outputs[0]["type"] == "tuple"
    return Function(
        contract=contract,
        name=name,
        selector=selector(signature(item)),
        inputs=tuple(abi_type(i) for i in item["inputs"]),
        outputs=tuple(abi_type(o) for o in outputs),
        struct_fields=tuple(c["name"] for c in outputs[0]["components"]) if one_struct else (),
        _encode_args=_args_encoder(item["inputs"]),
        _decode_results=_results_decoder(outputs),
    )


def calldata(contract: str, name: str, *args: Any) -> bytes:
    """The call data of `contract.name(*args)`."""
    return function(contract, name).encode(*args)


def returned(contract: str, name: str, data: bytes) -> tuple[Any, ...]:
    """The decoded return values of `contract.name` (addresses in lower case, as eth-abi gives them)."""
    return function(contract, name).decode(data)


def returned_struct(contract: str, name: str, data: bytes) -> dict[str, Any]:
    """The one struct `contract.name` returns, as its fields by name."""
    f = function(contract, name)
    if not f.struct_fields:
        raise TypeError(f"{contract}.{name} does not return one struct")
    (values,) = f.decode(data)
    return dict(zip(f.struct_fields, values, strict=True))

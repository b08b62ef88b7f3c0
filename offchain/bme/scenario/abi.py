"""Call data for the contracts' functions from their compiled ABIs, without web3's per-call overhead."""

from __future__ import annotations

from functools import cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from bme.chain.artifacts import artifact


def _type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


@cache
def _function(contract: str, name: str) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
    for item in artifact(contract).abi:
        if item.get("type") == "function" and item["name"] == name:
            inputs = tuple(_type(i) for i in item["inputs"])
            outputs = tuple(_type(o) for o in item.get("outputs", []))
            selector = keccak(text=f"{name}({','.join(inputs)})")[:4]
            return selector, inputs, outputs
    raise KeyError(f"{contract} has no function {name}")


def calldata(contract: str, name: str, *args: Any) -> bytes:
    """The call data of `contract.name(*args)`."""
    selector, inputs, _ = _function(contract, name)
    return selector + encode(list(inputs), list(args))


def returned(contract: str, name: str, data: bytes) -> tuple[Any, ...]:
    """The decoded return values of `contract.name`."""
    _, _, outputs = _function(contract, name)
    return tuple(decode(list(outputs), data))

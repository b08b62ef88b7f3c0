"""Decoding the escrow's and the registry's event logs from the compiled ABIs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode
from eth_utils.crypto import keccak

from bme.chain.artifacts import artifact

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


@dataclass(frozen=True)
class Event:
    """A decoded log."""

    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class _Spec:
    name: str
    indexed: list[tuple[str, str]]
    data: list[tuple[str, str]]


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def _specs(contract: str, names: tuple[str, ...]) -> dict[str, _Spec]:
    out: dict[str, _Spec] = {}
    for item in artifact(contract).abi:
        if item.get("type") != "event" or item["name"] not in names:
            continue
        types = [_abi_type(i) for i in item["inputs"]]
        topic = "0x" + keccak(text=f"{item['name']}({','.join(types)})").hex()
        out[topic] = _Spec(
            item["name"],
            [(i["name"], t) for i, t in zip(item["inputs"], types, strict=True) if i["indexed"]],
            [(i["name"], t) for i, t in zip(item["inputs"], types, strict=True) if not i["indexed"]],
        )
    missing = set(names) - {s.name for s in out.values()}
    if missing:
        raise RuntimeError(f"{contract}'s ABI lacks the events {sorted(missing)}")
    return out


class EventDecoder:
    """Turns raw logs of the escrow and the registry into `Event`s; logs of other events are skipped."""

    def __init__(self, escrow: str, registry: str) -> None:
        self.escrow = escrow.lower()
        self.registry = registry.lower()
        self._by_contract = {
            self.escrow: _specs("JobEscrow", ESCROW_EVENTS),
            self.registry: _specs("OperatorRegistry", REGISTRY_EVENTS),
        }

    @property
    def addresses(self) -> list[str]:
        return [self.escrow, self.registry]

    def decode(self, log: dict[str, Any]) -> Event | None:
        specs = self._by_contract.get(str(log["address"]).lower())
        topics = log.get("topics") or []
        spec = specs.get(topics[0]) if specs and topics else None
        if spec is None:
            return None
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(spec.indexed, topics[1:], strict=True):
            args[name] = decode([typ], bytes.fromhex(topic[2:]))[0]
        if spec.data:
            values = decode([t for _n, t in spec.data], bytes.fromhex(log["data"][2:]))
            args.update({n: v for (n, _t), v in zip(spec.data, values, strict=True)})
        return Event(
            spec.name,
            args,
            int(log["blockNumber"], 16),
            str(log["blockHash"]),
            str(log["transactionHash"]),
            int(log["logIndex"], 16),
        )

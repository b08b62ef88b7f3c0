"""What the chain-versus-model state machines share: a snapshot per example, one block time for both sides,
the comparison of a call's outcome on each side, and fast web3.py readers of the contracts."""

from __future__ import annotations

from typing import Any

from hypothesis.stateful import RuleBasedStateMachine

from bme.chain.client import ChainClient
from bme.chain.reverts import decode_revert
from bme.economics.model import ModelRevert, ProtocolModel
from tests.conftest import Deployed

GAS = 3_000_000


def revert_name(exc: Exception) -> str:
    """The custom error's name from an Ape exception, decoding errors of other contracts ourselves."""
    from ape.exceptions import ContractLogicError, CustomError

    if isinstance(exc, CustomError):
        return type(exc).__name__
    if isinstance(exc, ContractLogicError):
        data = exc.revert_message if exc.revert_message.startswith("0x") else None
        return decode_revert(data).name if data else exc.revert_message
    raise exc


class ChainModelMachine(RuleBasedStateMachine):
    """Base of the state machines: subclasses set `p` and `chain`, and build `self.model` on `self.now`."""

    p: Deployed
    chain: Any
    model: ProtocolModel

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = self.chain.snapshot()
        self.now = max(int(self.chain.blocks.head.timestamp), int(self.chain.pending_timestamp)) + 1

    def readers(self, contracts: dict[str, str]) -> dict[str, Any]:
        """web3.py contracts by field of `p` (mapped to contract names): reads much faster than Ape's."""
        client = ChainClient(self.chain.provider.web3)
        return {
            name: client.contract(kind, getattr(self.p, name).address) for name, kind in contracts.items()
        }

    def teardown(self) -> None:
        self.chain.restore(self.snapshot)

    def _tick(self, dt: int = 1) -> None:
        self.now += dt
        self.chain.pending_timestamp = self.now
        self.model.now = self.now

    def both(self, chain_call: Any, model_call: Any) -> tuple[Any, Any]:
        """Runs one call on each side at the same block time; asserts they agree on success or revert."""
        self._tick()
        try:
            receipt, chain_err = chain_call(), None
        except Exception as exc:
            receipt, chain_err = None, revert_name(exc)
        try:
            result, model_err = model_call(), None
        except ModelRevert as exc:
            result, model_err = None, exc.name
        assert chain_err == model_err, f"chain: {chain_err}, model: {model_err}"
        return receipt, result

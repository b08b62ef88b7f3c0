"""The price book's models and the BME core's pricing state, read from the deployed contracts: what a quote
(`bme.economics.quote`) is computed from."""

from __future__ import annotations

from typing import Any

from web3.exceptions import ContractLogicError, Web3Exception

from bme.chain.deploy import Protocol
from bme.chain.reverts import decode_revert
from bme.economics.params import Parameters
from bme.economics.quote import Market, Model
from bme.economics.status import Status
from bme.errors import ChainError, ConfigError

#: The price book's model ids are `uint16`.
MAX_MODEL_ID = 2**16 - 1


def read_market(protocol: Protocol) -> Market:
    """The BME core's pricing state now: its oracle's raw reading (unchecked: `Market.problems` says what a
    burn would refuse), its parameters, status, backing, outstanding credits and pause flags."""
    bme = protocol.bme.functions
    oracle = protocol.client.contract("IPriceOracle", bme.oracle().call())
    try:
        price, updated_at, confidence = oracle.functions.latestPrice().call()
    except ContractLogicError as exc:  # an adapter that refuses a stale or negative feed
        data = exc.data if isinstance(exc.data, str) else None
        raise ChainError(f"the oracle gives no price: {decode_revert(data)}") from None
    return Market(
        price=int(price),
        confidence=int(confidence),
        updated_at=int(updated_at),
        chain_time=protocol.client.next_timestamp(),
        params=Parameters(*bme.parameters().call()),
        max_age=int(oracle.functions.maxAge().call()),
        # The collateral status, not `status()`: an oracle halt leaves the CR hysteresis as it was.
        status=Status(bme.collateralStatus().call()),
        backing_tokens=int(bme.remintCredits().call()) + int(bme.seedTokens().call()),
        outstanding_credits=int(bme.outstandingCredits().call()),
        paused=bool(bme.paused().call()) or bool(protocol.escrow.functions.paused().call()),
    )


def model_names(protocol: Protocol) -> dict[int, str]:
    """The name of every model ever priced, by id, from the price book's `ModelPriced` events (the latest
    listing of an id names it). Names live only in the events: the contract stores prices, not names."""
    try:
        logs: Any = protocol.escrow.events.ModelPriced().get_logs(from_block=0)
    except (Web3Exception, ValueError) as exc:  # e.g. a node that limits the block range of a log query
        raise ChainError(f"cannot read the price book's model names: {exc}") from None
    names: dict[int, str] = {}
    for log in sorted(logs, key=lambda entry: (entry["blockNumber"], entry["logIndex"])):
        names[int(log["args"]["modelId"])] = str(log["args"]["name"])
    return names


def _read_model(protocol: Protocol, model_id: int, name: str) -> Model:
    inp, out, listed = protocol.escrow.functions.modelPrice(model_id).call()
    if inp == 0 and out == 0:
        raise ConfigError(f"model {model_id} is not in the price book")
    return Model(model_id, name, int(inp), int(out), bool(listed))


def find_model(protocol: Protocol, model: str) -> Model:
    """The model `model` names in the price book: an id (digits) or a name (exact, else case-insensitive).

    Raises `ConfigError` for an id or a name that is not in the price book, or a name two ids share.
    """
    text = model.strip()
    if text.isdigit():
        model_id = int(text)
        if model_id > MAX_MODEL_ID:
            raise ConfigError(f"model id {model_id} is out of range (0 to {MAX_MODEL_ID})")
        try:
            name = model_names(protocol).get(model_id, "")
        except ChainError:  # the name is only for display; the price is what matters
            name = ""
        return _read_model(protocol, model_id, name)
    names = model_names(protocol)
    ids = [i for i, n in names.items() if n == text] or [
        i for i, n in names.items() if n.casefold() == text.casefold()
    ]
    if not ids:
        known = ", ".join(f"{i} {n}" for i, n in sorted(names.items())) or "none"
        raise ConfigError(f"no model named {text!r} in the price book (models: {known})")
    if len(ids) > 1:
        raise ConfigError(f"several models are named {text!r} (ids {sorted(ids)}): give the model by id")
    return _read_model(protocol, ids[0], names[ids[0]])

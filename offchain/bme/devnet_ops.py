"""What only a devnet allows: hand out ETH and CMP, move the chain's clock, set the oracle's price.

These helpers sign with the devnet's well-known accounts (anvil's default mnemonic), whose keys are public:
they refuse any chain but a devnet's (chain id 31337 or 1337).

- **CMP** is never minted on demand (only the protocol mints it): a devnet deployment mints a reserve to the
  *faucet*, devnet account 9 (`bme stack up` and `ape run deploy` on a devnet mint 1,000,000 CMP to it), and
  `fund` transfers from that reserve. ETH comes from the faucet's devnet balance as well.
- **Time** moves with `evm_increaseTime` / `evm_setNextBlockTimestamp` and a mined block.
- **The price** is pushed to the `ManualPriceOracle` by its feeder, found among the devnet accounts by its
  `FEEDER_ROLE`. The oracle refuses readings older than its `maxAge` (30 s), so every move of the clock is
  followed by a fresh push of the current price; a move past its step bound is pushed in bounded steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from bme.chain.client import ChainClient, Sent
from bme.chain.deploy import DEVNET_CHAIN_IDS, Protocol, role
from bme.chain.devnet import devnet_keys
from bme.display import cmp as show_cmp
from bme.display import eth as show_eth
from bme.economics.oracle import bounded_steps, step_within
from bme.errors import BmeError, ChainError, ConfigError, ContractRevert

#: The devnet account that holds the CMP reserve `fund` hands out.
FAUCET_INDEX = 9
#: CMP minted to the faucet by a devnet deployment.
FAUCET_CMP = 1_000_000 * 10**18
#: Devnet accounts searched for the oracle's feeder.
SEARCHED_ACCOUNTS = 10


def require_devnet(client: ChainClient) -> None:
    """Refuses, with the reason, any chain that is not a local devnet."""
    if client.chain_id not in DEVNET_CHAIN_IDS:
        raise ConfigError(
            f"chain {client.chain_id} is not a devnet: the devnet helpers work only on chain ids "
            f"{' and '.join(map(str, DEVNET_CHAIN_IDS))}, whose accounts' keys are public"
        )


def devnet_account(index: int) -> LocalAccount:
    account: LocalAccount = Account.from_key(devnet_keys(index + 1)[index])
    return account


def faucet_account() -> LocalAccount:
    """Devnet account 9: the CMP reserve of a devnet deployment."""
    return devnet_account(FAUCET_INDEX)


def rpc(client: ChainClient, method: str, params: list[Any]) -> Any:
    """A raw JSON-RPC call; an error answer (an unsupported devnet method) becomes a `ChainError`."""
    reply = client.w3.provider.make_request(method, params)  # type: ignore[arg-type]
    if "error" in reply:
        message = reply["error"].get("message") if isinstance(reply["error"], dict) else reply["error"]
        raise ChainError(f"the node refused {method}: {message}")
    return reply.get("result")


# -- funds -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funded:
    """What `fund` sent, and the recipient's balances afterwards."""

    sent: list[Sent]
    eth: int
    cmp: int


def fund(protocol: Protocol, to: str, *, eth: int, cmp: int, faucet: LocalAccount | None = None) -> Funded:
    """Sends `eth` wei and `cmp` CMP base units to `to` from the faucet's reserve."""
    client = protocol.client
    require_devnet(client)
    faucet = faucet or faucet_account()
    to = Web3.to_checksum_address(to)
    have_cmp = int(protocol.token.functions.balanceOf(faucet.address).call())
    if cmp > have_cmp:
        raise ConfigError(
            f"the devnet faucet {faucet.address} (devnet account {FAUCET_INDEX}) holds "
            f"{show_cmp(have_cmp)}, less than the {show_cmp(cmp)} asked for: a devnet deployment "
            "mints its reserve (`bme stack up`, or `ape run deploy` on a devnet)"
        )
    have_eth = int(client.w3.eth.get_balance(faucet.address))
    if eth > have_eth:
        raise ConfigError(
            f"the devnet faucet {faucet.address} holds {show_eth(have_eth)}, "
            f"less than the {show_eth(eth)} asked for"
        )
    sent = []
    if eth:
        sent.append(client.send(faucet, to=to, value=eth))
    if cmp:
        sent.append(client.send(faucet, protocol.token.functions.transfer(to, cmp)))
    return Funded(
        sent, int(client.w3.eth.get_balance(to)), int(protocol.token.functions.balanceOf(to).call())
    )


# -- time ------------------------------------------------------------------------------------------------


def mine(client: ChainClient, timestamp: int | None = None) -> int:
    """Mines one block (at `timestamp`, if given); returns its time."""
    rpc(client, "evm_mine", [] if timestamp is None else [timestamp])
    return client.timestamp()


def advance(client: ChainClient, *, seconds: int | None = None, to: int | None = None) -> tuple[int, int]:
    """Moves the chain's clock `seconds` forward, or to the time `to`, and mines a block there; returns the
    chain's time before and after. A target already past only mines a block."""
    require_devnet(client)
    now = mine(client)  # the clock as it stands, in a block: the base of a relative move
    if seconds is not None:
        if seconds < 0:
            raise ConfigError("time only moves forward: give a positive number of seconds")
        to = now + seconds
    if to is not None and to > now:
        rpc(client, "evm_setNextBlockTimestamp", [to])
        return now, mine(client)
    return now, now


def epoch_end(protocol: Protocol) -> int:
    """The first second of the escrow's next epoch: the current epoch is over from then on."""
    escrow = protocol.escrow.functions
    epoch = int(escrow.currentEpoch().call())
    return int(escrow.epochGenesis().call()) + (epoch + 1) * int(escrow.epochLength().call())


def job_deadline(protocol: Protocol, job_id: int) -> int:
    """The deadline of job `job_id`; a `ConfigError` if there is no such job."""
    payer, _model, deadline, _max, _status = protocol.escrow.functions.jobOf(job_id).call()
    if int(payer, 16) == 0:
        raise ConfigError(f"there is no job 0x{job_id:064x} on this chain")
    return int(deadline)


# -- price -----------------------------------------------------------------------------------------------


FEEDER_ROLE = role("FEEDER_ROLE")


def find_feeder(protocol: Protocol) -> LocalAccount:
    """The devnet account allowed to push prices to the oracle (`FEEDER_ROLE`)."""
    oracle = protocol.oracle.functions
    for key in devnet_keys(SEARCHED_ACCOUNTS):
        account: LocalAccount = Account.from_key(key)
        if oracle.hasRole(FEEDER_ROLE, account.address).call():
            return account
    raise ConfigError(
        f"none of the first {SEARCHED_ACCOUNTS} devnet accounts may push prices to the oracle "
        f"{protocol.oracle.address}: its feeder is another account"
    )


def push_price(
    protocol: Protocol,
    feeder: LocalAccount,
    price: int | None = None,
    confidence: int | None = None,
    *,
    tries: int = 3,
) -> tuple[int, int]:
    """Pushes `price` (default: the oracle's current price, made fresh) observed now; returns the price and
    its time.

    A block is mined first, so the reading carries the clock's time rather than that of the last block, which
    may be minutes old on an idle devnet; a push racing another one from the same feeder (a stack's feeder
    and `bme devnet price`) is tried again. A move past the oracle's step bound (`maxStepBps`, 10 % by
    default) is pushed as several bounded steps observed a step period (at least a second) apart, the last one
    now (the clock moves on by as much as the steps need beyond the time since the last push).
    """
    client, oracle = protocol.client, protocol.oracle
    max_step_bps = int(oracle.functions.maxStepBps().call())
    period = int(oracle.functions.stepPeriod().call())
    spacing = max(period, 1)
    last: BmeError | None = None
    for _ in range(tries):
        current, updated_at, current_confidence = oracle.functions.latestPrice().call()
        value = int(current) if price is None else price
        band = int(current_confidence) if confidence is None else confidence
        if value <= 0:
            raise ConfigError("the oracle has no price to push again: set one first (`bme devnet price USD`)")
        steps = bounded_steps(int(current), value, max_step_bps)
        span = (len(steps) - 1) * spacing
        now = mine(client)
        first = max(now - span, int(updated_at) + 1)
        if not step_within(int(current), steps[0], max_step_bps, first - int(updated_at), period):
            first = int(updated_at) + spacing  # a full step: a whole step period after the last push
        if first + span > now:  # too soon for the steps: the clock moves on to their time
            now = mine(client, first + span)
        client.reset_nonce(feeder.address)  # another process may have used the feeder's nonce
        try:
            for i, step in enumerate(steps):
                client.send(feeder, oracle.functions.pushPrice(step, band, first + i * spacing))
        except ContractRevert as exc:
            if exc.name != "ManualPriceOracleBadTimestamp":
                raise
            last = exc
        except ChainError as exc:
            last = exc
        except ValueError as exc:  # web3's answer to a nonce taken meanwhile
            last = ChainError(str(exc))
        else:
            return value, now
    assert last is not None
    raise ChainError(f"could not push a price to the oracle: {last}")

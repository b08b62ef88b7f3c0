"""Why a transaction did not go through, as errors a person can act on, each one line.

Nodes refuse transactions in their own words (geth: "insufficient funds for gas * price + value", anvil:
"Insufficient funds for gas * price + value", "nonce too low"), which web3 raises as `Web3RPCError` or
`ValueError`; an unreachable node surfaces as a transport exception with a nested repr of the socket error.
Here they become `ChainError`s that say what happened and what to do: fund the wallet, try again, start the
node.
"""

from __future__ import annotations

from bme import display
from bme.errors import ChainError, ContractRevert, TransactionFailed

#: The advice for an account without ETH for gas; the devnet command funds a wallet by name or address.
FUND_HINT = "fund it with `bme devnet fund {who} --eth 1` on a devnet"


class GasFundsTooLow(ChainError):
    """The sending account holds too little ETH to pay the gas of a transaction (and its value)."""

    def __init__(self, address: str, balance: int, needed: int, what: str, wallet: str | None = None) -> None:
        self.address, self.balance, self.needed, self.what, self.wallet = (
            address,
            balance,
            needed,
            what,
            wallet,
        )
        holder = f"wallet {wallet} ({address})" if wallet else address
        super().__init__(
            f"{holder} has {display.eth(balance)}, too little to pay gas for {what} "
            f"(about {display.approximate(needed, display.ETH_DECIMALS, 'ETH')} needed); "
            f"{FUND_HINT.format(who=wallet or address)}"
        )

    def for_wallet(self, wallet: str) -> GasFundsTooLow:
        """The same error naming the account by its wallet, as the person who chose the wallet knows it."""
        return GasFundsTooLow(self.address, self.balance, self.needed, self.what, wallet)


class NonceTaken(ChainError):
    """The node refused a transaction whose nonce another transaction of the same account took first."""


class RevertedOnChain(ContractRevert, TransactionFailed):
    """A transaction that was mined and reverted (its gas is spent): the custom error replaying it gives."""


def is_insufficient_funds(exc: BaseException) -> bool:
    """Whether the node refused `exc`'s transaction for want of ETH (gas times price, plus the value)."""
    return "insufficient funds" in str(exc).lower()


def is_nonce_too_low(exc: BaseException) -> bool:
    """Whether the node refused `exc`'s transaction because its nonce was used already."""
    text = str(exc).lower()
    return "nonce too low" in text or "nonce is too low" in text


def is_unsupported(exc: BaseException) -> bool:
    """Whether the node does not implement what was asked (eth-tester's estimate on the pending block)."""
    text = str(exc).lower()
    return any(
        needle in text
        for needle in ("not been implemented", "not implemented", "unsupported", "method not found", "-32601")
    )


def node_message(exc: BaseException) -> str:
    """The node's own message in a `Web3RPCError`/`ValueError`, without web3's dict wrapping, on one line."""
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, dict) and "message" in arg:
        arg = arg["message"]
    return " ".join(str(arg).split())


def transport_problem(exc: BaseException) -> str:
    """What went wrong reaching a node, in a few words ("connection refused", "timed out"), from a transport
    exception whose text nests the socket error in reprs."""
    text = f"{type(exc).__name__} {exc}".lower()
    for needle, words in (
        ("connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("temporary failure in name resolution", "unknown host"),
        ("connection reset", "connection reset"),
        ("remote end closed", "the node closed the connection"),
        ("remotedisconnected", "the node closed the connection"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network unreachable"),
    ):
        if needle in text:
            return words
    first = str(exc).strip().splitlines()
    return first[0][:200] if first else type(exc).__name__


def unreachable(url: str, exc: BaseException) -> ChainError:
    """The error of a node that does not answer at `url`."""
    return ChainError(f"cannot reach the chain at {url}: {transport_problem(exc)} (is the node running?)")

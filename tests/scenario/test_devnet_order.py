"""A scenario's block holds its transactions in the order the runner chose, on every devnet: the model applies
them in that order, so any other order would make chain and model disagree. anvil serves a JSON-RPC batch's
items concurrently; transactions of many senders sent as one batch can reach its pool, and so a first-in
first-out block, in another order."""

from __future__ import annotations

import pytest
from eth_account import Account

from bme.scenario.devnets import open_devnet
from bme.scenario.timeline import GENESIS_TIME

SENDERS = 40
PER_SENDER = 3
BLOCKS = 6


@pytest.mark.parametrize("kind", ["anvil", "inprocess"])
def test_many_senders_transactions_are_mined_in_the_order_sent(kind: str) -> None:
    accounts = [Account.create() for _ in range(SENDERS)]
    sink = Account.create().address
    with open_devnet(kind, [a.address for a in accounts]) as devnet:
        chain_id = devnet.web3().eth.chain_id
        addresses = [a.address for a in accounts]
        nonces = dict(zip(addresses, devnet.nonces(addresses), strict=True))
        for block in range(BLOCKS):
            raw: list[bytes] = []
            for round_ in range(PER_SENDER):  # interleaved: sender 0, 1, ..., 39, then 0, 1, ... again
                for i, account in enumerate(accounts):
                    tx = {
                        "to": sink,
                        "value": 1 + i + round_ * SENDERS,
                        "gas": 21_000,
                        "gasPrice": 10**9,
                        "nonce": nonces[account.address],
                        "chainId": chain_id,
                    }
                    nonces[account.address] += 1
                    raw.append(bytes(account.sign_transaction(tx).raw_transaction))
            outcomes = devnet.execute(GENESIS_TIME + 100 * (block + 1), raw)  # raises if the order differs
            assert len(outcomes) == len(raw) and all(o.ok for o in outcomes)

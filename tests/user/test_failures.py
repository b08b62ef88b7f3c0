"""A transaction that cannot go through says why in one line, before any gas is spent where a simulation can
tell: a stale oracle (decoded before signing; replayed on its block when mined anyway), a wallet without ETH
for gas, a nonce another sender took, a node that does not answer. And the wallet's jobs: whole ids, local
deadlines, and `bme refund` taking a unique prefix of an id."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from bme import display
from bme.chain.client import ChainClient
from bme.chain.devnet import free_port
from bme.chain.failures import GasFundsTooLow, RevertedOnChain
from bme.commitment import job_hex, job_id_for
from bme.errors import ChainError, ConfigError, ContractRevert
from bme.user.jobs import JobsClient, StepFailed

from .conftest import BIG, CMP, PASSWORD, Devnet, bme, quick_keystore

NOBODY = "http://127.0.0.1:9"  # no relayer listens there


def _stale(devnet: Devnet, seconds: int = 100) -> None:
    """Moves the chain's clock without a block: the latest block, and the price pushed in it, still look
    fresh; the next block, where a transaction sent now is mined, is `seconds` later."""
    devnet.client.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]


def _new_account(devnet: Devnet, *, eth: int, cmp: int) -> LocalAccount:
    account: LocalAccount = Account.create()
    if eth:
        devnet.client.send(devnet.deployer, to=account.address, value=eth)
    if cmp:
        devnet.client.send(devnet.user, devnet.protocol.token.functions.transfer(account.address, cmp))
    return account


def _gas_state(devnet: Devnet, address: str) -> tuple[int, int]:
    eth = devnet.client.w3.eth
    return eth.get_balance(address), eth.get_transaction_count(address)  # type: ignore[arg-type]


def _run_bme(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`bme ARGS` as a real process: what a person sees on stderr, and the exit code."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BME_")}
    return subprocess.run(
        [sys.executable, "-m", "bme.cli.main", *args],
        capture_output=True,
        text=True,
        env=clean | env,
        timeout=120,
        check=False,
    )


def _one_line_failure(r: subprocess.CompletedProcess[str], message: str) -> None:
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: ") and message in r.stderr, r.stderr


def test_a_stale_oracle_is_named_before_any_gas_is_spent(devnet: Devnet) -> None:
    c, p, user = devnet.client, devnet.protocol, devnet.user
    devnet.fresh_price()
    _stale(devnet)
    before = _gas_state(devnet, user.address)
    spec = keccak(b"stale")
    terms = (BIG.model_id, spec, c.next_timestamp() + 3600, 2**32 - 1, 2**32 - 1)
    call = p.escrow.functions.burnForJob(100 * CMP, 0, terms)

    with pytest.raises(ContractRevert) as estimated:
        c.send(user, call)  # no gas limit: estimated in the pending block
    with pytest.raises(ContractRevert) as simulated:
        c.send(user, call, gas=300_000)  # a gas limit: simulated with it
    for caught in (estimated, simulated):
        assert caught.value.name == "BmeOracleStale"
        assert re.fullmatch(
            r"the oracle price is stale \(last update 1\d\d s ago, limit 30 s\)", str(caught.value)
        )
    assert _gas_state(devnet, user.address) == before

    # Sent unchecked, it is mined and reverts, spending gas: replayed on its block, it still names the reason.
    with pytest.raises(RevertedOnChain) as mined:
        c.send(user, call, gas=300_000, check=False)
    assert mined.value.name == "BmeOracleStale"
    assert re.fullmatch(
        r"the oracle price is stale \(last update 1\d\d s ago, limit 30 s\) "
        r"\(transaction 0x[0-9a-f]{64} reverted when mined, gas used [\d,]+\)",
        str(mined.value),
    )
    assert _gas_state(devnet, user.address)[0] < before[0]
    devnet.fresh_price()


def test_bme_ask_on_a_stale_oracle_fails_at_the_quote_before_revealing_or_paying(
    devnet: Devnet, tmp_path: Path
) -> None:
    devnet.fresh_price()
    quick_keystore(tmp_path / "alice.json", PASSWORD, devnet.user.key)
    _stale(devnet)
    before = _gas_state(devnet, devnet.user.address)
    r = _run_bme(
        "ask", "--wallet", "alice", "--model", str(BIG.model_id), "--max-tokens", "8", "Say hello.",
        env=devnet.env(BME_WALLET_DIR=str(tmp_path), BME_PASSWORD=PASSWORD, BME_RELAYER_URL=NOBODY),
    )  # fmt: skip
    _one_line_failure(r, "error: quote: a burn now would fail: the oracle price is stale (last update 1")
    assert r.stdout == ""  # nothing was revealed: the relayer (none listens) was never called
    assert _gas_state(devnet, devnet.user.address) == before
    devnet.fresh_price()


def test_a_wallet_without_eth_fails_in_one_line_saying_what_gas_needs(devnet: Devnet, tmp_path: Path) -> None:
    devnet.fresh_price()
    p = devnet.protocol
    broke = _new_account(devnet, eth=0, cmp=100 * CMP)
    with pytest.raises(GasFundsTooLow) as caught:
        devnet.client.send(broke, p.token.functions.approve(p.bme.address, CMP))
    text = str(caught.value)
    needed = re.search(r"about ([\d.]+) ETH needed", text)
    assert needed and 0 < float(needed.group(1)) < 0.01, text
    assert text.startswith(f"{broke.address} has 0 ETH, too little to pay gas for approve (about ")
    assert text.endswith(f"fund it with `bme devnet fund {broke.address} --eth 1` on a devnet")
    assert "\n" not in text

    # Paying for a job from a named wallet: the step, the wallet's name, and nothing spent.
    client = JobsClient(p, broke, NOBODY, wallet="broke")
    job = client.prepare(BIG.name, "Say hello.", max_tokens=8)
    with pytest.raises(StepFailed) as paid:
        client.pay(job)
    assert str(paid.value).startswith(f"pay: wallet broke ({broke.address}) has 0 ETH, too little to pay gas")
    assert "for burnForJobWithPermit" in str(paid.value) and "bme devnet fund broke --eth 1" in str(
        paid.value
    )
    assert p.token.functions.balanceOf(broke.address).call() == 100 * CMP
    client.close()

    # `bme ask` simulates the payment before revealing: the pay step fails, and the relayer is never called.
    quick_keystore(tmp_path / "broke.json", PASSWORD, broke.key)
    r = _run_bme(
        "ask", "--wallet", "broke", "--model", str(BIG.model_id), "--max-tokens", "8", "Say hello.",
        env=devnet.env(BME_WALLET_DIR=str(tmp_path), BME_PASSWORD=PASSWORD, BME_RELAYER_URL=NOBODY),
    )  # fmt: skip
    _one_line_failure(
        r, f"error: pay: wallet broke ({broke.address}) has 0 ETH, too little to pay gas for burnFor"
    )
    assert "fund it with `bme devnet fund broke --eth 1` on a devnet" in r.stderr and r.stdout == ""


def test_a_nonce_another_sender_took_is_read_again(devnet: Devnet) -> None:
    sender = _new_account(devnet, eth=10**18, cmp=0)
    first, second = ChainClient.connect(devnet.anvil.url), ChainClient.connect(devnet.anvil.url)
    first.send(sender, to=devnet.deployer.address, value=1)  # `first` caches the next nonce
    second.send(sender, to=devnet.deployer.address, value=1)  # `second` takes it
    sent = first.send(sender, to=devnet.deployer.address, value=1)  # refused as too low, read again, sent
    assert sent.receipt["status"] == 1
    assert devnet.client.w3.eth.get_transaction_count(sender.address) == 3


def test_an_unreachable_node_is_one_line(devnet: Devnet) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainError) as caught:
        ChainClient.connect(url)
    assert str(caught.value) == f"cannot reach the chain at {url}: connection refused (is the node running?)"
    r = _run_bme("wallet", "balance", devnet.user.address, env=devnet.env(BME_RPC_URL=url))
    _one_line_failure(r, f"error: cannot reach the chain at {url}: connection refused")


def _ids_sharing_a_prefix(payer: str, digits: int = 3) -> tuple[bytes, bytes]:
    """Two request commitments whose job ids for `payer` start with the same `digits` hex digits."""
    seen: dict[str, bytes] = {}
    for i in range(100_000):
        spec = keccak(f"request {i}".encode())
        start = job_hex(job_id_for(payer, spec))[: 2 + digits]
        if start in seen:
            return seen[start], spec
        seen[start] = spec
    raise AssertionError("no two job ids share a prefix")


def test_jobs_lists_whole_ids_with_local_deadlines_and_refund_takes_a_unique_prefix(
    devnet: Devnet, tmp_path: Path
) -> None:
    c, p = devnet.client, devnet.protocol
    devnet.fresh_price()
    carol = _new_account(devnet, eth=10**18, cmp=100 * CMP)
    quick_keystore(tmp_path / "carol.json", PASSWORD, carol.key)
    env = devnet.env(BME_WALLET_DIR=str(tmp_path), BME_PASSWORD=PASSWORD, BME_RELAYER_URL=NOBODY)
    specs = _ids_sharing_a_prefix(carol.address)
    c.send(carol, p.token.functions.approve(p.bme.address, 20 * CMP))
    deadline = c.next_timestamp() + 660  # a little over the escrow's shortest job duration (10 minutes)
    for spec in specs:
        c.send(carol, p.escrow.functions.burnForJob(10 * CMP, 0, (BIG.model_id, spec, deadline, 100, 100)))
    ids = [job_hex(job_id_for(carol.address, spec)) for spec in specs]

    r = bme("jobs", "--wallet", "carol", env=env)
    assert r.exit_code == 0, r.output + repr(r.exception)
    for job in ids:
        (row,) = [line for line in r.stdout.splitlines() if job in line]  # whole, on one line
        assert display.local_time(deadline) in row and re.search(r"\(in (10|11) min\)", row), row
        assert "open" in row and "unknown" in row  # on-chain status; the relayer did not answer

    r = bme("refund", ids[0][:5], "--wallet", "carol", env=env)
    assert isinstance(r.exception, ConfigError), r.output
    assert f"{ids[0][:5]} is the start of 2 jobs" in str(r.exception)
    assert all(job in str(r.exception) for job in ids) and "give more digits" in str(r.exception)
    r = bme("refund", "0x0g", "--wallet", "carol", env=env)
    assert isinstance(r.exception, ConfigError) and "is not a job id" in str(r.exception)

    prefix = ids[0][:12]
    r = bme("refund", prefix, "--wallet", "carol", env=env)
    assert isinstance(r.exception, StepFailed)
    assert f"refund: job {ids[0]} is open until {display.local_time(deadline)} (in " in str(r.exception)

    c.w3.provider.make_request("evm_increaseTime", [700])  # type: ignore[arg-type]
    c.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    reserved = p.escrow.functions.jobOf(int(ids[0], 16)).call()[3]
    r = bme("jobs", "--wallet", "carol", env=env)
    assert r.exit_code == 0 and "(expired)" in r.stdout and "open, refundable" in r.stdout, r.stdout
    r = bme("refund", prefix, "--wallet", "carol", env=env)
    assert r.exit_code == 0, r.output + repr(r.exception)
    assert f"job {ids[0]} expired: {display.crd(reserved)} back to the wallet in 0x" in r.stdout
    assert p.credit.functions.balanceOf(carol.address).call() == reserved
    devnet.fresh_price()

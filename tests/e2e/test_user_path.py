"""The user's path with real processes: anvil, an operator node (embedded model) and a relayer.

One stack serves the module: `bme ask` from an encrypted wallet, reads guarded by the payer's signature,
reveal signatures bound to job, chain and contract, a forged relayer credential at the node, and a payment
left unserved that the payer refunds after its deadline with `bme refund`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from bme.chain.deploy import SMOLLM2
from bme.commitment import Domain, job_hex, read_message, result_hash, reveal_message, sign
from bme.credential import sign_request
from bme.stack import CMP, LocalStack, Process, StackConfig, bme_command
from bme.user.jobs import JobsClient
from bme.wallet.keystore import create_keystore

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Process, Process]]:
    work = tmp_path_factory.mktemp("user-path")
    with LocalStack(StackConfig(users=2, user_funds=1_000 * CMP, work_dir=work)) as st:
        node = st.start_node(0)
        relayer = st.start_relayer(extra_env={"BME_RELAYER_BATCH_AGE_S": "0.2"})
        yield st, node, relayer


def _bme(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*bme_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "COLUMNS": "200"},
        timeout=300,
    )


def _cli_env(st: LocalStack, relayer: Process, wallets: Path) -> dict[str, str]:
    return {
        "BME_PASSWORD": PASSWORD,
        "BME_WALLET_DIR": str(wallets),
        "BME_RPC_URL": st.anvil.url,
        "BME_DEPLOYMENT": str(st.deployment_file),
        "BME_RELAYER_URL": relayer.url,
    }


def test_ask_from_a_wallet_prints_a_verified_answer(
    stack: tuple[LocalStack, Process, Process], tmp_path: Path
) -> None:
    st, _node, relayer = stack
    user = st.users[0]
    create_keystore(tmp_path / "alice.json", PASSWORD, bytes(user.key))
    env = _cli_env(st, relayer, tmp_path)
    cmp_before = st.protocol.token.functions.balanceOf(user.address).call()

    done = _bme(
        ["ask", "--wallet", "alice", "--model", SMOLLM2.name, "--max-tokens", "16", "Say hello."], env
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    for step in (
        "quote:",
        "reveal:",
        "pay: burned",
        "charged",
        "refunded",
        "settled in transaction",
        "verified",
    ):
        assert step in out, (step, out)
    assert st.protocol.token.functions.balanceOf(user.address).call() < cmp_before
    # The wallet's jobs: the one just paid, settled on-chain and at the relayer.
    listed = _bme(["jobs", "--wallet", "alice"], env)
    assert listed.returncode == 0, listed.stderr
    assert "settled" in listed.stdout


def test_ask_reads_the_prompt_from_stdin_and_names_the_failing_step(
    stack: tuple[LocalStack, Process, Process], tmp_path: Path
) -> None:
    st, _node, relayer = stack
    create_keystore(tmp_path / "alice.json", PASSWORD, bytes(st.users[0].key))
    env = _cli_env(st, relayer, tmp_path)
    env["BME_RELAYER_URL"] = "http://127.0.0.1:9"  # nothing listens there
    done = _bme(["ask", "--wallet", "alice", "--max-tokens", "8", "-"], env, stdin="Say hello.")
    assert done.returncode == 1
    assert "reveal:" in done.stderr and "unreachable" in done.stderr
    # Nothing was paid: the reveal comes before the payment.
    wrong = _bme(["ask", "--wallet", "alice", "--max-tokens", "8", "hi"], {**env, "BME_PASSWORD": "nope"})
    assert wrong.returncode == 1 and "wrong password" in wrong.stderr


def _paid_job(st: LocalStack, relayer: Process, user_index: int = 0) -> tuple[JobsClient, int, str]:
    client = JobsClient(st.protocol, st.users[user_index], relayer.url)
    job = client.prepare(SMOLLM2.name, "Name a colour.", max_tokens=4)
    client.reveal(job)
    client.pay(job)
    body = client.wait(job.job_id, timeout=120)
    assert body["state"] == "SETTLED", body
    return client, job.job_id, str(body["answer"])


def test_only_the_payer_reads_a_job_and_the_answer_matches_the_chain(
    stack: tuple[LocalStack, Process, Process],
) -> None:
    st, _node, relayer = stack
    client, job_id, answer = _paid_job(st, relayer)
    settled = client.verify(job_id, answer)
    assert bytes(settled["resultHash"]) == result_hash(answer)

    other = JobsClient(st.protocol, st.users[1], relayer.url)
    issued = int(time.time())
    headers = {
        "X-BME-Issued-At": str(issued),
        "X-BME-Signature": sign(st.users[1], read_message(other.domain, job_id, issued)),
    }
    r = httpx.get(f"{relayer.url}/v1/jobs/{job_hex(job_id)}", headers=headers)
    assert r.status_code == 403 and "payer" in r.json()["detail"]
    assert "answer" not in r.json()
    # A read signature for another job does not open this one.
    wrong = read_message(client.domain, job_id + 1, issued)
    headers = {"X-BME-Issued-At": str(issued), "X-BME-Signature": sign(st.users[0], wrong)}
    assert httpx.get(f"{relayer.url}/v1/jobs/{job_hex(job_id)}", headers=headers).status_code == 403
    # An old read signature is refused.
    stale = issued - 3600
    headers = {
        "X-BME-Issued-At": str(stale),
        "X-BME-Signature": sign(st.users[0], read_message(client.domain, job_id, stale)),
    }
    assert httpx.get(f"{relayer.url}/v1/jobs/{job_hex(job_id)}", headers=headers).status_code == 401
    client.close()
    other.close()


@pytest.mark.parametrize("where", ["another job", "another chain", "another contract"])
def test_a_reveal_signature_is_bound_to_its_job_chain_and_contract(
    stack: tuple[LocalStack, Process, Process], where: str
) -> None:
    st, _node, relayer = stack
    client = JobsClient(st.protocol, st.users[0], relayer.url)
    job = client.prepare(SMOLLM2.name, f"Replay test: {where}.", max_tokens=4)
    d = client.domain
    if where == "another job":
        other = client.prepare(SMOLLM2.name, "A different request.", max_tokens=4)
        signature = sign(st.users[0], reveal_message(d, other.job_id, other.spec))
    elif where == "another chain":
        signature = sign(st.users[0], reveal_message(Domain(d.chain_id + 1, d.escrow), job.job_id, job.spec))
    else:
        signature = sign(
            st.users[0], reveal_message(Domain(d.chain_id, st.protocol.deployment.bme), job.job_id, job.spec)
        )
    r = httpx.post(
        f"{relayer.url}/v1/jobs/{job.job_hex}/reveal", json={"request": job.text, "signature": signature}
    )
    assert r.status_code == 403, r.text
    assert "payer" in r.json()["detail"]
    client.close()


def test_the_node_refuses_a_forged_relayer_credential(stack: tuple[LocalStack, Process, Process]) -> None:
    st, node, _relayer = stack
    body = json.dumps(
        {"model": SMOLLM2.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    ).encode()
    forger = Account.create()
    headers = sign_request(forger, "POST", "/v1/chat/completions", body, operator=st.operators[0].address)
    r = httpx.post(
        f"{node.url}/v1/chat/completions",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 401
    # The relayer's own credential, but made out for another operator's node, is refused as well.
    headers = sign_request(
        st.relayer_account, "POST", "/v1/chat/completions", body, operator=st.users[0].address
    )
    r = httpx.post(
        f"{node.url}/v1/chat/completions",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 401


def test_an_unserved_payment_is_refunded_in_full_after_its_deadline(
    stack: tuple[LocalStack, Process, Process], tmp_path: Path
) -> None:
    st, _node, relayer = stack
    user = st.users[1]
    client = JobsClient(st.protocol, user, relayer.url)
    job = client.prepare(SMOLLM2.name, "Never revealed.", max_tokens=4)
    # Paid but never revealed: no relayer can serve it. Due in 11 minutes, just over the shortest duration.
    sent = client.pay(job, duration_s=660)
    reserved = st.protocol.escrow.functions.jobOf(job.job_id).call()[3]
    create_keystore(tmp_path / "bob.json", PASSWORD, bytes(user.key))
    env = _cli_env(st, relayer, tmp_path)

    early = _bme(["refund", job.job_hex, "--wallet", "bob"], env)
    assert early.returncode == 1 and "open until" in early.stderr

    w3 = st.client.w3
    w3.provider.make_request("evm_increaseTime", [700])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    credits_before = st.protocol.credit.functions.balanceOf(user.address).call()
    done = _bme(["refund", job.job_hex, "--wallet", "bob"], env)
    assert done.returncode == 0, done.stderr
    assert st.protocol.credit.functions.balanceOf(user.address).call() == credits_before + reserved
    assert sent.tx_hash
    st.push_price()  # the oracle after the jump in time, for the tests that follow
    client.close()

"""A settlement stuck in the mempool is re-sent at the same nonce with a higher fee, and settles once."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from bme.chain.deploy import SMOLLM2
from bme.stack import LocalStack, StackConfig
from bme.user.jobs import JobsClient

from .helpers import wait_until


def _metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_a_stuck_settlement_is_bumped_and_settles_exactly_once(tmp_path: Path) -> None:
    with LocalStack(StackConfig(work_dir=tmp_path, price_interval_s=0)) as st:
        st.start_node(0)
        relayer = st.start_relayer(
            extra_env={"BME_RELAYER_BATCH_AGE_S": "0.1", "BME_RELAYER_STUCK_AFTER_S": "1.5"}
        )
        client = JobsClient(st.protocol, st.users[0], relayer.url)
        job = client.prepare(SMOLLM2.name, "Say hi.", max_tokens=2)
        client.reveal(job)
        w3 = st.client.w3
        # Hold the settlement in the mempool: no block is mined after the payment until the test says so.
        client.pay(job)
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        while _metric(relayer.url, "bme_relayer_fee_bumps_total") < 1:
            assert time.monotonic() < deadline, "the relayer never bumped the stuck settlement"
            time.sleep(0.2)
        assert client.status(job.job_id)["state"] == "SETTLING"
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        body = client.wait(job.job_id, timeout=60)
        assert body["state"] == "SETTLED"
        logs = st.protocol.escrow.events.JobSettled().get_logs(from_block=st.protocol.deployment.first_block)
        assert [int(ev["args"]["jobId"]) for ev in logs] == [job.job_id]

        def settlements() -> list[tuple[int, str, str]]:
            db = sqlite3.connect(tmp_path / "relayer.db")
            try:
                return db.execute("SELECT nonce, tx_hashes, status FROM settlements").fetchall()
            finally:
                db.close()

        # The JobSettled event can mark the job settled before the settler reads the receipt of its send.
        rows = wait_until(
            "the settler to record the mined settlement",
            lambda: r if (r := settlements()) and r[0][2] != "pending" else None,
            timeout=30,
        )
        assert len(rows) == 1
        nonce, hashes, status = rows[0]
        assert status == "mined" and len(hashes.split(",")) >= 2  # the first send and at least one bump
        # The mined transaction is one of the recorded sends, at the recorded nonce.
        mined = logs[0]["transactionHash"].hex()
        assert any(h.removeprefix("0x") == mined.removeprefix("0x") for h in hashes.split(","))
        assert w3.eth.get_transaction(logs[0]["transactionHash"])["nonce"] == nonce
        client.close()

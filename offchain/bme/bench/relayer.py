"""`bme bench relayer`: the relayer's added latency and CPU per job, on anvil with the real operator node.

For each of `jobs` jobs the request is revealed first; then the payment (`burnForJob`) is sent and its receipt
awaited. The added latency is from the moment the receipt is in hand to the moment the operator node records
the request's arrival in its job journal (both clocks are this machine's). The relayer's CPU time is its
process's user + system seconds over the run, divided by the jobs it settled.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bme.bench.stats import percentile
from bme.chain.deploy import SMOLLM2
from bme.commitment import job_hex
from bme.stack import CMP, LocalStack, StackConfig
from bme.user.jobs import JobsClient

TARGET_P50_MS, TARGET_P99_MS, TARGET_CPU_MS = 20.0, 100.0, 2.0
PROMPT = "Say hi."


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _arrivals(journal: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in journal.read_text().splitlines():
        record = json.loads(line)
        if "received_at" in record:
            out.setdefault(record["job"], record["received_at"])
    return out


def run_relayer_bench(
    jobs: int = 1000,
    max_tokens: int = 1,
    progress: Callable[[str], None] | None = None,
    rate: float = 0.0,
) -> dict[str, Any]:
    """Runs the benchmark; `rate` paces the payments (jobs per second), 0 sends them back to back."""
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="bme-bench-relayer-") as tmp:
        config = StackConfig(users=1, user_funds=(jobs + 10) * 11 * CMP, work_dir=Path(tmp))
        with LocalStack(config) as stack:
            say("starting the operator node")
            stack.start_node(0)
            say("starting the relayer")
            relayer = stack.start_relayer(
                extra_env={
                    "BME_RELAYER_BATCH_AGE_S": "0.5",
                    "BME_RELAYER_RATE_PER_MINUTE": str(10 * jobs + 100),
                }
            )
            user = stack.users[0]
            client = JobsClient(stack.protocol, user, relayer.url)
            p, chain = stack.protocol, stack.client
            first = client.prepare(SMOLLM2.name, PROMPT, max_tokens=max_tokens)
            chain.send(user, p.token.functions.approve(p.bme.address, 2**255))
            quote = first.quote
            cpu_start, wall_start = _cpu_seconds(relayer.popen.pid), time.monotonic()
            paid: dict[str, float] = {}
            deadline = chain.timestamp() + 3600
            interval = 1.0 / rate if rate > 0 else 0.0
            next_send = time.monotonic()
            for i in range(jobs):
                if interval:
                    next_send += interval
                    time.sleep(max(0.0, next_send - time.monotonic()))
                job = client.prepare_with(quote, PROMPT, max_tokens=max_tokens) if i else first
                client.reveal(job)
                call = p.escrow.functions.burnForJob(quote.burn_cmp, quote.burn_credits, job.terms(deadline))
                chain.send(user, call, gas=300_000)
                paid[job.job_hex] = time.time()
                if i % 50 == 0:
                    say(f"paid {i + 1}/{jobs} jobs")
            say("waiting for every job to settle")
            settled = 0
            wait_until = time.monotonic() + 300
            while time.monotonic() < wait_until:
                counts = client.http.get(f"{relayer.url}/readyz").json()["jobs"]
                settled = int(counts.get("SETTLED", 0))
                if settled >= jobs:
                    break
                time.sleep(0.2)
            wall = time.monotonic() - wall_start
            cpu = _cpu_seconds(relayer.popen.pid) - cpu_start
            arrivals = _arrivals(stack.work_dir / "node-0-journal.jsonl")
            latencies = [(arrivals[j] - t) * 1000 for j, t in paid.items() if j in arrivals]
            settle_logs = p.escrow.events.JobSettled().get_logs(from_block=p.deployment.first_block)
            client.close()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    cpu_per_job = cpu / max(settled, 1) * 1000
    return {
        "jobs": jobs,
        "settled": settled,
        "settled_on_chain": len({int(ev["args"]["jobId"]) for ev in settle_logs}),
        "dispatched": len(latencies),
        "added_latency_ms": {
            "p50": round(p50, 3),
            "p99": round(p99, 3),
            "mean": round(statistics.fmean(latencies), 3),
            "max": round(max(latencies), 3),
        },
        "relayer_cpu_ms_per_job": round(cpu_per_job, 3),
        "relayer_cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 2),
        "confirmations": 0,
        "payment_rate_per_s": rate or "back to back",
        "targets": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS, "cpu_ms_per_job": TARGET_CPU_MS},
        "meets": {
            "p50": p50 <= TARGET_P50_MS,
            "p99": p99 <= TARGET_P99_MS,
            "cpu": cpu_per_job <= TARGET_CPU_MS,
        },
        "example_job": job_hex(first.job_id),
    }

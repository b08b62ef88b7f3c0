"""`bme bench e2e`: paying through the protocol against calling the operator node directly, side by side.

For each of `jobs` rounds, in alternating order: (a) the same chat request sent straight to the node with the
relayer's credential; (b) the request revealed to the relayer beforehand, then the clock runs from sending the
`burnForJob` transaction to holding the answer (the relayer's long-poll returns when the answer is ready).
Both produce the same `max_tokens` answer at temperature 0 on the same node, so the ratio is what the protocol
adds: block inclusion, ingestion, dispatch and the answer's way back.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bme.bench.stats import percentile
from bme.chain.deploy import SMOLLM2
from bme.commitment import request_text
from bme.credential import sign_request
from bme.job_states import JobState
from bme.stack import CMP, LocalStack, StackConfig
from bme.user.jobs import JobsClient

TARGET_RATIO = 1.10
PROMPT = "Write a long story about a lighthouse keeper and a storm."


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def run_e2e_bench(
    jobs: int = 50, max_tokens: int = 64, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory(prefix="bme-bench-e2e-") as tmp:
        config = StackConfig(users=1, user_funds=(jobs + 10) * 11 * CMP, work_dir=Path(tmp))
        with LocalStack(config) as stack:
            say("starting the operator node and the relayer")
            node = stack.start_node(0)
            relayer = stack.start_relayer(
                extra_env={
                    "BME_RELAYER_BATCH_AGE_S": "0.5",
                    "BME_RELAYER_RATE_PER_MINUTE": str(20 * jobs + 100),
                }
            )
            p, chain, user = stack.protocol, stack.client, stack.users[0]
            client = JobsClient(p, user, relayer.url)
            quote = client.prepare(SMOLLM2.name, PROMPT, max_tokens=max_tokens).quote
            chain.send(user, p.token.functions.approve(p.bme.address, 2**255))
            operator = stack.operators[0].address
            direct_http = httpx.Client(timeout=120)
            direct: list[float] = []
            protocol: list[float] = []
            tokens: set[int] = set()

            def call_direct() -> None:
                body = json.loads(
                    request_text(SMOLLM2.name, [{"role": "user", "content": PROMPT}], max_tokens)
                )
                body.pop("nonce")
                raw = json.dumps(body).encode()
                headers = sign_request(
                    stack.relayer_account, "POST", "/v1/chat/completions", raw, operator=operator
                )
                t0 = time.perf_counter()
                r = direct_http.post(
                    node.url + "/v1/chat/completions",
                    content=raw,
                    headers={**headers, "Content-Type": "application/json"},
                )
                r.raise_for_status()
                direct.append(time.perf_counter() - t0)
                tokens.add(int(r.json()["usage"]["completion_tokens"]))

            def call_protocol() -> None:
                job = client.prepare_with(quote, PROMPT, max_tokens=max_tokens)
                client.reveal(job)
                deadline = chain.timestamp() + 3600
                call = p.escrow.functions.burnForJob(quote.burn_cmp, quote.burn_credits, job.terms(deadline))
                t0 = time.perf_counter()
                chain.send(user, call, gas=300_000)
                body = client.status(job.job_id, wait=120, until="answer")
                protocol.append(time.perf_counter() - t0)
                if body["state"] not in (JobState.COMPLETED, JobState.SETTLING, JobState.SETTLED):
                    raise RuntimeError(f"job {job.job_hex} ended {body['state']}: {body.get('reason')}")
                tokens.add(int(body["output_tokens"]))

            call_direct()  # warm both paths once, unmeasured
            call_protocol()
            direct.clear()
            protocol.clear()
            for i in range(jobs):
                first, second = (call_direct, call_protocol) if i % 2 == 0 else (call_protocol, call_direct)
                first()
                second()
                if i % 5 == 0:
                    say(f"round {i + 1}/{jobs}")
            direct_http.close()
            client.close()
    d, pr = _summary(direct), _summary(protocol)
    ratio_p50 = pr["p50_ms"] / d["p50_ms"]
    return {
        "jobs": jobs,
        "max_tokens": max_tokens,
        "completion_tokens_seen": sorted(tokens),
        "direct": d,
        "through_protocol": pr,
        "ratio_p50": round(ratio_p50, 4),
        "ratio_p99": round(pr["p99_ms"] / d["p99_ms"], 4),
        "added_ms_p50": round(pr["p50_ms"] - d["p50_ms"], 2),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio_p50 <= TARGET_RATIO,
    }

"""The demo, whole, as the suite's slowest test: what `make demo` shows a new user must work."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from bme.cli.demo import run_demo


@pytest.mark.slow
def test_the_demo_pays_answers_settles_claims_and_redeems() -> None:
    out = io.StringIO()
    started = time.monotonic()
    result = run_demo(Console(file=out, width=200), max_tokens=24)
    elapsed = time.monotonic() - started
    text = out.getvalue()

    job = result["job"]
    assert job["state"] == "SETTLED" and job["answer"]
    assert job["output_tokens"] <= 24 and job["charge"] > 0 and job["refund"] > 0
    assert result["reward"] > 0  # the epoch's emission, minted to the only staked operator
    assert result["redeemed"]["credits"] == job["charge"]
    figures = result["figures"]
    assert figures["cmp_emitted"] == result["reward"]
    assert figures["cmp_burned"] > 0 and figures["status"] == "Healthy"
    for step in (
        "1. A devnet",
        "2. An operator node",
        "3. A user burns",
        "4. The settlement",
        "5. The challenge window passes",
        "6. The operator redeems",
        "verified",
        "demo complete",
    ):
        assert step in text, step
    assert elapsed < 120, f"the demo took {elapsed:.0f} s; it must take under 2 minutes"

"""`bme bench codec` measures the chain layer's encodings on logs it checks it decodes right."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from bme.bench.codec import escrow_log, measure
from bme.chain.events import EventDecoder
from bme.cli.main import app

pytestmark = pytest.mark.pure


def test_the_benchmark_reports_both_figures() -> None:
    figures = measure(batch=10, logs=20)
    assert (figures["settle_batch"], figures["logs"]) == (10, 20)
    assert figures["settle_calldata_ms"] > 0 and figures["decode_logs_ms"] > 0


def test_its_logs_are_the_escrows_events() -> None:
    rng = random.Random(3)
    escrow = "0x" + rng.randbytes(20).hex()
    log, args = escrow_log(escrow, "JobSettled", rng)
    event = EventDecoder(escrow, "0x" + bytes(20).hex()).decode(log)
    assert event is not None and (event.name, event.args) == ("JobSettled", args)


def test_the_command_prints_json() -> None:
    result = CliRunner().invoke(app, ["bench", "codec", "--batch", "5", "--logs", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["logs"] == 4

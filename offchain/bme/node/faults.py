"""Fault injection for tests: make a model worker kill itself with a signal at a chosen stage.

`BME_NODE_FAULT_INJECT=sigill-at-load` makes each model worker the node starts send itself SIGILL just before
it loads the model, exactly as a runtime built for another CPU dies; `sigsegv-at-warmup` crashes it after
loading, before its first token. Several faults are separated by commas. The tests use it to prove that a
runtime which crashes at start stops `bme operator serve` with a one-line reason instead of a silent death;
it is read by each worker when it starts, so setting it in a running node's environment affects only the
workers it restarts. Never set it on a real node.
"""

from __future__ import annotations

import os
import signal
import sys
import time

FAULT_ENV = "BME_NODE_FAULT_INJECT"
STAGES = ("load", "warmup")
"""Where a worker can be made to crash: before loading the model, and after loading it, before its warm-up."""

INJECTED = "fault injection:"
"""How the line a worker writes just before killing itself begins (tests time the crash from it)."""


def parse_faults(spec: str) -> dict[str, signal.Signals]:
    """`{"load": SIGILL}` for "sigill-at-load"; raises ValueError, naming the variable, on anything else."""
    faults: dict[str, signal.Signals] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, stage = item.partition("-at-")
        try:
            signum = signal.Signals[name.upper()]
        except KeyError:
            signum = None
        if signum is None or stage not in STAGES:
            raise ValueError(
                f"{FAULT_ENV}={spec!r}: expected <signal>-at-<stage>, e.g. sigill-at-load "
                f"(stages: {', '.join(STAGES)})"
            )
        faults[stage] = signum
    return faults


def inject(stage: str, faults: dict[str, signal.Signals]) -> None:
    """Kills this process with the signal set for `stage`, if any, after saying so on stderr."""
    signum = faults.get(stage)
    if signum is None:
        return
    sys.stderr.write(f"{INJECTED} {signum.name} at {stage} (pid {os.getpid()}, t={time.time():.3f})\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signum)
    time.sleep(60)  # a signal the process catches or ignores must not let it carry on as if nothing happened
    raise SystemExit(f"{INJECTED} {signum.name} did not end the worker")

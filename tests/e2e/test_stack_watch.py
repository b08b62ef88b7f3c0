"""A local stack notices at once when one of its processes dies: the thread that waits gets `ProcessDied`
naming the process and its signal, everything else is stopped, and `bme demo` exits 1 with that one line well
within 10 s of the death, instead of waiting out a timeout."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bme import children
from bme.chain.deploy import SMOLLM2
from bme.chain.devnet import free_port
from bme.children import Death
from bme.stack import LocalStack, ProcessDied, StackConfig, bme_command


def upstream_node(upstream_port: int) -> dict[str, str]:
    """A node in front of an upstream server (no model to load: it starts in a second)."""
    return {
        "BME_NODE_BACKEND": "upstream",
        "BME_NODE_UPSTREAM_URL": f"http://127.0.0.1:{upstream_port}/v1",
        "BME_NODE_UPSTREAM_MODEL": "upstream-model",
        "BME_NODE_MODEL_NAME": SMOLLM2.name,
    }


def test_a_node_killed_by_a_signal_fails_the_waiting_thread_at_once(tmp_path: Path) -> None:
    deaths: list[Death] = []
    stack = LocalStack(StackConfig(work_dir=tmp_path, on_death=deaths.append))
    with pytest.raises(ProcessDied) as caught, stack:
        node = stack.start_node(0, extra_env=upstream_node(free_port()))
        relayer = stack.start_relayer()
        killed = time.monotonic()
        os.kill(node.pid, signal.SIGILL)
        time.sleep(60)  # any wait of the test's thread: the death interrupts it
    noticed = time.monotonic() - killed
    assert noticed < 3, f"the death was noticed {noticed:.1f} s after it"
    assert str(caught.value).startswith(f"node-0 (pid {node.pid}) killed by SIGILL")
    assert [d.name for d in deaths] == ["node-0"]
    assert not relayer.alive() and stack.anvil.pid is None  # everything else stopped


def test_a_death_seen_first_by_the_waiting_thread_is_reported_once_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node exits while `node_ready` waits for it (given an unknown backend, it exits at once), and the
    watcher has not looked yet (here it looks every minute): the waiting thread records the death, so it is
    reported once, with the node's last words."""
    monkeypatch.setattr(children, "POLL_S", 60.0)
    deaths: list[Death] = []
    stack = LocalStack(StackConfig(work_dir=tmp_path, price_interval_s=0, on_death=deaths.append))
    with pytest.raises(ProcessDied) as caught, stack:
        stack.start_node(0, extra_env={**upstream_node(free_port()), "BME_NODE_BACKEND": "no-such-backend"})
    assert [d.name for d in deaths] == ["node-0"] and caught.value.death is deaths[0]
    assert deaths[0].returncode == 1
    assert any("BME_NODE_BACKEND" in line for line in deaths[0].tail), deaths[0].tail
    assert stack.death is deaths[0] and stack.anvil.pid is None


def test_a_process_stopped_on_purpose_is_no_death(tmp_path: Path) -> None:
    with LocalStack(StackConfig(work_dir=tmp_path, price_interval_s=0)) as stack:
        relayer = stack.start_relayer()
        relayer.stop(signal.SIGKILL)  # as the crash-safety tests do, before they start another
        time.sleep(0.5)
        stack.check()
        assert stack.death is None
        assert stack.start_relayer(instance="relayer-1").alive()


@pytest.mark.slow
def test_the_demo_exits_with_the_cause_soon_after_the_node_dies(tmp_path: Path) -> None:
    """The node's model runtime crashes while loading (the node's fault injection), so the node exits."""
    env = {**os.environ, "BME_NODE_FAULT_INJECT": "sigill-at-load", "TMPDIR": str(tmp_path), "COLUMNS": "200"}
    started = time.monotonic()
    demo = subprocess.run(
        [*bme_command(), "demo"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    ended = time.time()
    assert demo.returncode == 1, demo.stdout + demo.stderr
    last = demo.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: node-0 \(pid \d+\) (exited with status \d+|killed by SIG\w+) \(log: .*\)", last
    ), demo.stderr
    assert "SIGILL" in demo.stderr  # the node's log's tail, printed above the cause, says why it exited
    log = Path(last.rsplit("(log: ", 1)[1].rstrip(")"))
    died = log.stat().st_mtime  # the node's last words
    assert ended - died < 10, f"the demo exited {ended - died:.1f} s after the node's last log line"
    print(
        f"\ndemo: {time.monotonic() - started:.1f} s in all, exited {ended - died:.1f} s after the node died"
    )

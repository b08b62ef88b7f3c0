"""Crashes of the model runtime, performed for real on SmolLM2-135M: the node names them and recovers.

A worker is killed with SIGILL (what a runtime built for another CPU dies of) while it serves, or made to
crash while it starts (`BME_NODE_FAULT_INJECT`, read by each worker when it starts), and the node must
answer the requests it was running with a 503 naming the signal, restart it, report itself not ready
meanwhile, and give up (`bme operator serve` exits 1 with one line) when restarts keep failing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from bme.gguf.files import find_smollm2_gguf
from bme.node.app import CHAT_PATH, create_app
from bme.node.embedded import EmbeddedBackend
from bme.node.faults import FAULT_ENV, INJECTED
from bme.node.server import BackgroundServer, free_port
from bme.node.settings import NodeSettings

from .conftest import Node, SpyBackend, chat_body

CRASH_TO_EXIT_LIMIT_S = 10.0


# --- fixtures -----------------------------------------------------------------------------------------------


@contextmanager
def own_node(settings: NodeSettings, relayer: LocalAccount, operator: LocalAccount) -> Iterator[Node]:
    """A node over a model worker of its own (the tests kill it; the session's shared one is left alone)."""
    spy = SpyBackend(EmbeddedBackend.from_settings(settings))
    app = create_app(settings, spy, owns_backend=True)
    with BackgroundServer(app) as server:
        yield Node(server.url, app, settings, spy, relayer, operator)


@pytest.fixture(scope="module")
def fragile(make_settings: Any, relayer: LocalAccount, operator: LocalAccount) -> Iterator[Node]:
    """A node whose worker the tests kill, restarted quickly."""
    settings = make_settings(
        n_threads=1, max_queue=4, worker_restart_attempts=3, worker_restart_backoff_s=0.1
    )
    with own_node(settings, relayer, operator) as node:
        yield node


def backend_of(node: Node) -> EmbeddedBackend:
    inner = node.spy.inner
    assert isinstance(inner, EmbeddedBackend)
    return inner


def wait_until_ready(node: Node, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with node.client() as http:
        while True:
            response = http.get("/readyz")
            if response.status_code == 200:
                return dict(response.json())
            assert time.monotonic() < deadline, f"the node did not become ready again: {response.text}"
            time.sleep(0.1)


def wait_until_running(node: Node, running: int = 1, queued: int = 0) -> None:
    deadline = time.monotonic() + 60
    with node.client() as http:
        while True:
            health = http.get("/healthz").json()
            if health["running"] == running and health["queued"] == queued:
                return
            assert time.monotonic() < deadline, f"requests never reached the model: {health}"
            time.sleep(0.02)


def in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def assert_names_sigill(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "model_unavailable"
    assert "SIGILL" in error["message"] and "restarting" in error["message"], error
    assert response.headers["Retry-After"]


# --- the runtime runs at all --------------------------------------------------------------------------------


def test_the_model_generates_in_a_subprocess(runtime_smoke: subprocess.CompletedProcess[str]) -> None:
    """llama-cpp-python run directly, in a process of its own (`run_model_in_subprocess`, shared with the
    fixture that guards the in-process reference): a crash fails it with the signal's name, a hang with
    its timeout, and pytest lives on."""
    assert runtime_smoke.returncode == 0
    assert runtime_smoke.stdout.strip()


# --- a crash while serving ----------------------------------------------------------------------------------


def test_sigill_in_flight_gets_503_naming_it_and_the_worker_is_restarted(
    fragile: Node, caplog: pytest.LogCaptureFixture
) -> None:
    backend = backend_of(fragile)
    [pid] = backend.worker_pids
    running, running_result = in_thread(lambda: fragile.chat(chat_body(max_tokens=500)))
    wait_until_running(fragile)
    queued, queued_result = in_thread(lambda: fragile.chat(chat_body(max_tokens=4)))
    wait_until_running(fragile, running=1, queued=1)
    time.sleep(0.3)  # into the generation loop
    with caplog.at_level(logging.INFO, logger="bme.node"):
        os.kill(pid, signal.SIGILL)
        running.join(timeout=60)
        queued.join(timeout=60)
        assert_names_sigill(running_result[0])  # the request in flight
        assert_names_sigill(queued_result[0])  # and the one waiting for it
        with fragile.client() as http:
            not_ready = http.get("/readyz")
            health = http.get("/healthz").json()
        assert not_ready.status_code == 503
        assert "SIGILL" in not_ready.json()["reason"], not_ready.json()
        assert health["status"] == "restarting" and "SIGILL" in health["reason"]
        wait_until_ready(fragile)
    crash_logs = [r for r in caplog.records if r.levelno >= logging.ERROR and "SIGILL" in r.getMessage()]
    assert crash_logs and f"pid {pid}" in crash_logs[0].getMessage()
    assert "illegal instruction" in crash_logs[0].getMessage()

    answer = fragile.chat(chat_body(max_tokens=3))
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] == 3
    assert backend.worker_pids != [pid]
    with fragile.client() as http:
        health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["model_restarts"] >= 1


def test_sigill_mid_stream_ends_the_stream_with_an_error_naming_it(fragile: Node) -> None:
    wait_until_ready(fragile)
    [pid] = backend_of(fragile).worker_pids
    raw, headers = fragile.signed(chat_body(max_tokens=500, stream=True))
    events: list[Any] = []
    with (
        fragile.client() as http,
        http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
            content = [e for e in events if isinstance(e, dict) and e.get("choices")]
            if len(content) == 3 and backend_of(fragile).worker_pids == [pid]:
                os.kill(pid, signal.SIGILL)  # after a few tokens: the stream was flowing token by token
    assert "[DONE]" not in events
    error = events[-1]["error"]
    assert error["code"] == "model_unavailable" and "SIGILL" in error["message"], error
    wait_until_ready(fragile)
    assert fragile.chat(chat_body(max_tokens=2)).status_code == 200


def test_restarts_that_keep_crashing_make_the_node_not_ready_then_give_up(
    make_settings: Any, relayer: LocalAccount, operator: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(n_threads=1, worker_restart_attempts=2, worker_restart_backoff_s=0.2)
    with own_node(settings, relayer, operator) as node:
        backend = backend_of(node)
        monkeypatch.setenv(FAULT_ENV, "sigill-at-warmup")  # every restarted worker crashes before its token
        os.kill(backend.worker_pids[0], signal.SIGKILL)
        reasons: list[str] = []
        deadline = time.monotonic() + 90
        with node.client() as http:
            while (health := http.get("/healthz")).status_code == 200:
                ready = http.get("/readyz")
                assert ready.status_code == 503
                reasons.append(ready.json()["reason"])
                assert time.monotonic() < deadline, "the node never gave up"
                time.sleep(0.05)
            refused = node.chat(chat_body(max_tokens=2))
        assert any("SIGKILL" in r and "restarting it" in r for r in reasons), reasons
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "failed"
        assert "crashed with SIGILL (illegal instruction) while warming up" in body["reason"]
        assert body["reason"].endswith("(gave up after 2 failed restarts)")
        assert backend.health().failed
        assert refused.status_code == 503 and "SIGILL" in refused.json()["error"]["message"]


# --- `bme operator serve` stops with one line ---------------------------------------------------------------


@dataclass
class ServeRun:
    """`bme operator serve` in a subprocess, its stderr lines timed as they arrive."""

    process: subprocess.Popen[str]
    port: int
    lines: list[tuple[float, str]] = field(default_factory=list)
    stdout: str = ""

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first(self, text: str) -> float | None:
        return next((t for t, line in self.lines if text in line), None)

    @property
    def last_line(self) -> str:
        return next((line for _, line in reversed(self.lines) if line.strip()), "")


def serve(relayer: LocalAccount, operator: LocalAccount, **env: str) -> ServeRun:
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BME_NODE_")}
    environment |= {
        "BME_NODE_TRUSTED_RELAYER": relayer.address,
        "BME_NODE_OPERATOR_ADDRESS": operator.address,
        "BME_NODE_N_THREADS": "1",
        "COLUMNS": "400",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bme.cli.main", "operator", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = ServeRun(process, port)

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            run.lines.append((time.monotonic(), line.rstrip("\n")))

    threading.Thread(target=read, daemon=True).start()
    return run


def finish(run: ServeRun, timeout_s: float) -> tuple[int, float]:
    """Waits for the process to exit; returns its code and when it exited."""
    try:
        code = run.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        run.process.kill()
        pytest.fail(f"bme operator serve did not exit within {timeout_s:g}s:\n" + run.stderr)
    exited = time.monotonic()
    assert run.process.stdout is not None
    run.stdout = run.process.stdout.read()
    time.sleep(0.1)  # the last stderr lines
    return code, exited


def test_serve_exits_with_one_line_when_the_runtime_crashes_at_load(
    relayer: LocalAccount, operator: LocalAccount
) -> None:
    started = time.monotonic()
    run = serve(relayer, operator, **{FAULT_ENV: "sigill-at-load"})
    code, exited = finish(run, timeout_s=120)
    crashed = run.first(INJECTED)
    assert crashed is not None, run.lines
    print(f"\ninjected SIGILL at load -> exit: {exited - crashed:.2f}s (whole run {exited - started:.2f}s)")
    assert code == 1
    assert exited - crashed < CRASH_TO_EXIT_LIMIT_S
    stderr = run.stderr
    assert "Traceback" not in stderr
    assert run.last_line.startswith("error: the model runtime crashed with SIGILL (illegal instruction)")
    assert "while loading the model" in run.last_line and "make clean setup" in run.last_line
    assert "model runtime: llama-cpp-python" in stderr  # the log says which build crashed
    assert "operator node:" not in run.stdout  # it never listened
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{run.port}/healthz", timeout=1)


def test_serve_exits_with_one_line_when_restarts_keep_failing(
    relayer: LocalAccount, operator: LocalAccount, tmp_path: Path
) -> None:
    model = tmp_path / "model.gguf"
    shutil.copyfile(find_smollm2_gguf(), model)
    run = serve(
        relayer,
        operator,
        BME_NODE_MODEL_PATH=str(model),
        BME_NODE_WORKER_RESTART_ATTEMPTS="1",
        BME_NODE_WORKER_RESTART_BACKOFF_S="0.1",
    )
    url = f"http://127.0.0.1:{run.port}"
    deadline = time.monotonic() + 90
    while True:
        assert run.process.poll() is None, run.stderr
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the node did not come up"
        time.sleep(0.1)
    children = Path(f"/proc/{run.process.pid}/task/{run.process.pid}/children")
    if not children.exists():
        run.process.kill()
        pytest.skip("cannot find the worker's process id on this system")
    [worker] = [int(pid) for pid in children.read_text().split()]
    model.unlink()  # the worker that runs has it mapped; a restarted one cannot load it
    os.kill(worker, signal.SIGILL)
    crashed = time.monotonic()
    code, exited = finish(run, timeout_s=60)
    print(f"\nSIGILL, failed restart -> exit: {exited - crashed:.2f}s")
    assert code == 1
    assert exited - crashed < CRASH_TO_EXIT_LIMIT_S
    assert run.last_line.startswith("error: the model runtime failed while loading the model"), run.last_line
    assert run.last_line.endswith("(gave up after 1 failed restart)")
    stderr = run.stderr
    assert "crashed with SIGILL (illegal instruction) while serving requests" in stderr

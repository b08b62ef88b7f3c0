"""`bme operator serve` as a real process, its settings errors, and the node benchmark's figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from bme.cli.operator_node import operator_app
from bme.credential import sign_request
from bme.errors import ConfigError
from bme.node.app import CHAT_PATH
from bme.node.bench import run_node_bench
from bme.node.embedded import EmbeddedBackend
from bme.node.server import free_port

from .conftest import MODEL, chat_body

if TYPE_CHECKING:
    from llama_cpp import Llama

SERVE = "from bme.cli.operator_node import operator_app; operator_app(prog_name='bme operator')"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BME_NODE_")}
    return env | extra


def test_serve_refuses_incomplete_settings(tmp_path: Any, monkeypatch: Any, relayer: LocalAccount) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)  # no stray .env

    def problem(*args: str) -> str:
        result = runner.invoke(operator_app, ["serve", *args], env=clean_env())
        assert isinstance(result.exception, ConfigError), result.output  # one line on stderr under `bme`
        return str(result.exception)

    missing = problem()
    assert "trusted_relayer: Field required (option --trusted-relayer or BME_NODE_TRUSTED_RELAYER)" in missing
    assert "operator_address: Field required" in missing
    zero = problem("--trusted-relayer", "0x" + "00" * 20, "--operator-address", relayer.address)
    assert "must not be the zero address" in zero
    bad = problem("--trusted-relayer", relayer.address, "--operator-address", "0x1")
    assert "operator_address: operator_address must be a 0x-prefixed 20-byte address" in bad
    upstream = problem(
        "--backend", "upstream", "--trusted-relayer", relayer.address, "--operator-address", relayer.address
    )
    assert "needs upstream_url and upstream_model" in upstream


def test_serve_runs_the_embedded_node_until_interrupted(
    relayer: LocalAccount, operator: LocalAccount
) -> None:
    port = free_port()
    env = clean_env(
        BME_NODE_TRUSTED_RELAYER=relayer.address,
        BME_NODE_OPERATOR_ADDRESS=operator.address,
        BME_NODE_N_THREADS="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                health = httpx.get(f"{url}/healthz", timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the node did not come up"
                time.sleep(0.1)
        assert health["backend"] == "embedded" and health["model"] == MODEL
        assert_model_runs_outside(process.pid)
        raw = json.dumps(chat_body(max_tokens=3)).encode()
        headers = sign_request(relayer, "POST", CHAT_PATH, raw, operator=operator.address)
        answer = httpx.post(f"{url}{CHAT_PATH}", content=raw, headers=headers, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 3
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output  # the conventional exit status after Ctrl-C
    assert f"operator node: SmolLM2-135M-Instruct (embedded) on http://127.0.0.1:{port}" in output
    assert "model runtime: llama-cpp-python" in output and "; fits" in output  # which build runs
    assert "Application shutdown complete" in output


def assert_model_runs_outside(server_pid: int) -> None:
    """The server process has not loaded the model runtime's library; its one worker process has."""
    maps = Path(f"/proc/{server_pid}/maps")
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    if not maps.exists() or not children.exists():
        return  # not Linux: nothing to look at
    assert "libllama" not in maps.read_text()
    [worker] = children.read_text().split()
    assert "libllama" in Path(f"/proc/{worker}/maps").read_text()


def test_node_bench_measures_node_and_direct_side_by_side(
    embedded: EmbeddedBackend, reference_llama: Llama, make_settings: Any
) -> None:
    settings = make_settings(n_threads=1)  # the settings the shared model instances were loaded with
    result = run_node_bench(
        max_tokens=8, concurrency=2, repeats=2, settings=settings, backend=embedded, direct=reference_llama
    )
    overhead = result["overhead"]
    assert overhead["completion_tokens"] == 8
    assert overhead["same_usage"] and overhead["same_text"]
    assert overhead["ratio"] > 0 and overhead["direct_median_s"] > 0
    single, concurrent = result["single_stream"], result["concurrent"]
    assert (
        single["completion_tokens"] == 8
        and single["tokens_per_s"] > 0
        and 0 < single["ttft_s"] < single["total_s"]
    )
    assert concurrent["requests"] == 2 and concurrent["completion_tokens"] == 16
    assert 0 < concurrent["ttft_s"]["min"] <= concurrent["ttft_s"]["max"]
    json.dumps(result)  # what `bme bench node --json` prints

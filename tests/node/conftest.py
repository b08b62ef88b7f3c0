"""Fixtures for the operator node: the real embedded model, started once, and real servers on loopback.

Nothing here imports llama_cpp at collection time. The node's embedded backend runs the model in worker
processes (the test process never loads it for the node); the tests that compare with llama-cpp-python
called directly get an instance in this process from `reference_llama`, but only after `runtime_smoke` has
run the model in a subprocess, so a runtime that crashes fails the tests with the signal's name instead of
killing pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from bme.credential import sign_request
from bme.node.app import CHAT_PATH, create_app
from bme.node.backends import Backend, BackendHealth, ChatParams, Completion, PreparedChat, StreamEvent
from bme.node.embedded import EmbeddedBackend
from bme.node.exits import describe_exit
from bme.node.server import BackgroundServer
from bme.node.settings import NodeSettings

if TYPE_CHECKING:
    from llama_cpp import Llama

MODEL = "SmolLM2-135M-Instruct"
PROMPT = "Write a long story about a robot who learns to paint."

GENERATE_4_TOKENS = """
from bme.node.engine import load_llama
from bme.gguf.files import find_smollm2_gguf
llama = load_llama(find_smollm2_gguf(), n_ctx=256, n_threads=1, n_batch=64, seed=0)
out = llama.create_completion("The robot", max_tokens=4, temperature=0)
assert out["usage"]["completion_tokens"] == 4, out
print(repr(out["choices"][0]["text"]))
"""
"""The embedded model run directly, as a user of llama-cpp-python would: load it and generate 4 tokens."""


def run_model_in_subprocess(timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs GENERATE_4_TOKENS in a fresh interpreter; fails the test, naming the signal, if it crashes."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", GENERATE_4_TOKENS],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the embedded model did not generate 4 tokens within {timeout_s:g}s (hung?)")
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        pytest.fail(
            f"running the embedded model in a subprocess failed: it {describe_exit(done.returncode)}"
            f" (return code {done.returncode}).\n{tail}"
        )
    return done


@pytest.fixture(scope="session")
def relayer() -> LocalAccount:
    return Account.from_key(b"\x11" * 32)


@pytest.fixture(scope="session")
def operator() -> LocalAccount:
    return Account.from_key(b"\x22" * 32)


@pytest.fixture(scope="session")
def stranger() -> LocalAccount:
    return Account.from_key(b"\x33" * 32)


@pytest.fixture(scope="session")
def make_settings(relayer: LocalAccount, operator: LocalAccount) -> Any:
    def make(**overrides: Any) -> NodeSettings:
        values: dict[str, Any] = {
            "trusted_relayer": relayer.address,
            "operator_address": operator.address,
            "request_timeout_s": 120.0,
        }
        values.update(overrides)
        return NodeSettings(**values)

    return make


@pytest.fixture(scope="session")
def embedded(make_settings: Any) -> Iterator[EmbeddedBackend]:
    """The real SmolLM2-135M-Instruct in one model worker process, started once for the whole session.

    One thread: the test machine has two cores and other work running, and llama.cpp's spinning thread
    barrier makes two threads far slower than one when a core is taken.
    """
    backend = EmbeddedBackend.from_settings(make_settings(n_threads=1))
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def runtime_smoke() -> subprocess.CompletedProcess[str]:
    """The model runs in a subprocess (so this pytest can load it too without risking its life)."""
    return run_model_in_subprocess()


@pytest.fixture(scope="session")
def reference_llama(runtime_smoke: subprocess.CompletedProcess[str]) -> Iterator[Llama]:
    """llama-cpp-python itself, in this process, for the tests that check the node against it."""
    from bme.gguf.files import find_smollm2_gguf
    from bme.node.engine import load_llama

    llama = load_llama(find_smollm2_gguf(), n_ctx=2048, n_threads=1, n_batch=512, seed=0)
    yield llama
    llama.close()


class SpyBackend:
    """A real backend, counting the calls that reach it (to prove a rejected request never did)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    async def prepare(self, params: ChatParams, *, default_max_tokens: int) -> PreparedChat:
        self.calls += 1
        return await self.inner.prepare(params, default_max_tokens=default_max_tokens)

    async def complete(self, prepared: PreparedChat, *, deadline: float) -> Completion:
        self.calls += 1
        return await self.inner.complete(prepared, deadline=deadline)

    async def stream(self, prepared: PreparedChat, *, deadline: float) -> AsyncGenerator[StreamEvent, None]:
        self.calls += 1
        async for event in self.inner.stream(prepared, deadline=deadline):
            yield event

    def health(self) -> BackendHealth:
        return self.inner.health()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Node:
    """A node served on loopback, with a relayer that signs its calls."""

    url: str
    app: FastAPI
    settings: NodeSettings
    spy: SpyBackend
    relayer: LocalAccount
    operator: LocalAccount

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kwargs)

    def signed(
        self, body: dict[str, Any] | bytes, *, signer: LocalAccount | None = None, **sign_kwargs: Any
    ) -> tuple[bytes, dict[str, str]]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = sign_request(
            signer or self.relayer, "POST", CHAT_PATH, raw, operator=self.operator.address, **sign_kwargs
        )
        return raw, {**headers, "Content-Type": "application/json"}

    def chat(self, body: dict[str, Any] | bytes, **kwargs: Any) -> httpx.Response:
        raw, headers = self.signed(body)
        with self.client() as http:
            return http.post(CHAT_PATH, content=raw, headers=headers, **kwargs)


def chat_body(content: str = PROMPT, *, max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


@pytest.fixture(scope="session")
def serve_node(
    embedded: EmbeddedBackend, make_settings: Any, relayer: LocalAccount, operator: LocalAccount
) -> Any:
    """Context manager: a node on a free loopback port, over `backend` (default: the embedded model)."""

    @contextmanager
    def serve(
        backend: Backend | None = None, settings: NodeSettings | None = None, **overrides: Any
    ) -> Iterator[Node]:
        """A given `backend` is closed with its server; the shared embedded one lives for the session."""
        settings = settings or make_settings(**overrides)
        spy = SpyBackend(backend or embedded)
        app = create_app(settings, spy, owns_backend=backend is not None)
        with BackgroundServer(app) as server:
            yield Node(server.url, app, settings, spy, relayer, operator)

    return serve


@pytest.fixture(scope="session")
def node(serve_node: Any) -> Iterator[Node]:
    """The node with default limits, shared by the tests that do not change them."""
    with serve_node() as served:
        yield served

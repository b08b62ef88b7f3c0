"""`bme bench node`: the embedded model's speed through the node, and the node's overhead over a direct call.

Everything is measured side by side in one run, in one process, on one loaded model:

- single stream: streamed requests through the node (HTTP, signed), one at a time, their median time to
  first token and tokens per second, beside llama-cpp-python's own streaming time to first token;
- concurrent: `concurrency` streamed requests sent at once, their aggregate tokens per second and
  times to first token (the node queues what its slots cannot run at once);
- overhead: the same prompt and `max_tokens` through the node (non-streamed, signed, over loopback HTTP)
  and through llama-cpp-python's `create_chat_completion` on a model instance loaded in this process with
  the node's settings, interleaved; the ratio of the medians is the node's cost (HTTP, auth, validation,
  queueing, and the hop to and from the model worker process).

The direct instance is the only llama-cpp-python in this process: the node's own run in its workers.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from bme.credential import sign_request
from bme.gguf.files import resolve_model_path
from bme.node.app import CHAT_PATH, create_app
from bme.node.embedded import EmbeddedBackend
from bme.node.errors import NodeError
from bme.node.server import BackgroundServer
from bme.node.settings import NodeSettings

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_PROMPT = "Write a long story about a robot who learns to paint, with many details."
SEED = 0


@dataclass
class _Streamed:
    ttft_s: float
    total_s: float
    completion_tokens: int
    first_at: float
    last_at: float


class _Client:
    """Signed calls of a relayer to the node under test."""

    def __init__(self, base_url: str, relayer: LocalAccount, operator: str, model: str) -> None:
        self._base_url = base_url
        self._relayer = relayer
        self._operator = operator
        self._model = model
        self._http = httpx.Client(base_url=base_url, timeout=300)

    def _post(self, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        raw = json.dumps(body).encode()
        headers = sign_request(self._relayer, "POST", CHAT_PATH, raw, operator=self._operator)
        return raw, {**headers, "Content-Type": "application/json"}

    def body(self, prompt: str, max_tokens: int, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": SEED,
        }
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body

    def complete(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        raw, headers = self._post(self.body(prompt, max_tokens, stream=False))
        response = self._http.post(CHAT_PATH, content=raw, headers=headers)
        if response.status_code != 200:
            raise NodeError(f"node answered {response.status_code}: {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def stream(self, prompt: str, max_tokens: int) -> _Streamed:
        raw, headers = self._post(self.body(prompt, max_tokens, stream=True))
        started = time.perf_counter()
        first_at = last_at = 0.0
        tokens = 0
        with self._http.stream("POST", CHAT_PATH, content=raw, headers=headers) as response:
            if response.status_code != 200:
                raise NodeError(f"node answered {response.status_code}: {response.read().decode()}")
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise NodeError(f"node stream failed: {chunk['error']}")
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if any(c["delta"].get("content") for c in chunk["choices"]):
                    last_at = time.perf_counter()
                    first_at = first_at or last_at
        ended = time.perf_counter()
        return _Streamed(first_at - started, ended - started, tokens, first_at, last_at)

    def close(self) -> None:
        self._http.close()


def _direct(llama: Llama, prompt: str, max_tokens: int) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    result = llama.create_chat_completion(
        messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0, seed=SEED
    )
    elapsed = time.perf_counter() - started
    assert isinstance(result, dict)
    return elapsed, dict(result)


def _direct_ttft(llama: Llama, prompt: str, max_tokens: int) -> float:
    """Time to the first text of llama-cpp-python's own streaming chat completion."""
    started = time.perf_counter()
    chunks: Any = llama.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        seed=SEED,
        stream=True,
    )
    ttft = 0.0
    for chunk in chunks:
        if not ttft and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            ttft = time.perf_counter() - started
    return ttft


def _rate(tokens: int, seconds: float) -> float:
    return round(tokens / seconds, 2) if seconds > 0 else 0.0


def run_node_bench(
    *,
    max_tokens: int = 64,
    concurrency: int = 4,
    repeats: int = 5,
    prompt: str = DEFAULT_PROMPT,
    settings: NodeSettings | None = None,
    backend: EmbeddedBackend | None = None,
    direct: Llama | None = None,
) -> dict[str, Any]:
    """Starts the embedded model, serves it on loopback and measures; returns the figures (see module doc).

    A `backend` and a `direct` instance already loaded (with the same settings) are used as they are and
    left open: the tests share theirs with the benchmark instead of loading the model twice more.
    """
    relayer: LocalAccount = Account.create()
    operator: LocalAccount = Account.create()
    settings = settings or NodeSettings(
        trusted_relayer=relayer.address,
        operator_address=operator.address,
        max_queue=max(8, concurrency),
        max_tokens_limit=max(512, max_tokens),
    )
    settings = settings.model_copy(
        update={"trusted_relayer": relayer.address, "operator_address": operator.address}
    )
    with ExitStack() as owned:
        loaded_at = time.perf_counter()
        if backend is None:
            backend = EmbeddedBackend.from_settings(settings)
            owned.callback(backend.close)
        load_s = time.perf_counter() - loaded_at
        if direct is None:
            direct = _load_direct(settings)
            owned.callback(direct.close)
        server = owned.enter_context(BackgroundServer(create_app(settings, backend)))
        client = _Client(server.url, relayer, operator.address, backend.model_id)
        owned.callback(client.close)
        return _measure(client, direct, backend, settings, prompt, max_tokens, concurrency, repeats, load_s)


def _load_direct(settings: NodeSettings) -> Llama:
    """llama-cpp-python in this process, loaded as the node's workers load it, for the direct figures."""
    from bme.node.engine import load_llama

    return load_llama(
        resolve_model_path(settings.model_path),
        n_ctx=settings.n_ctx,
        n_threads=settings.threads_per_instance,
        n_batch=settings.n_batch,
        seed=settings.seed,
    )


def _measure(
    client: _Client,
    direct: Llama,
    backend: EmbeddedBackend,
    settings: NodeSettings,
    prompt: str,
    max_tokens: int,
    concurrency: int,
    repeats: int,
    load_s: float,
) -> dict[str, Any]:
    # Warm up both paths (first-call allocations, page cache).
    _direct(direct, prompt, max_tokens)
    client.complete(prompt, max_tokens)

    # Overhead: node vs direct, interleaved, alternating which goes first.
    direct_s: list[float] = []
    node_s: list[float] = []
    reference: dict[str, Any] = {}
    node_answer: dict[str, Any] = {}
    for i in range(repeats):
        order = ("direct", "node") if i % 2 == 0 else ("node", "direct")
        for which in order:
            if which == "direct":
                elapsed, reference = _direct(direct, prompt, max_tokens)
                direct_s.append(elapsed)
            else:
                started = time.perf_counter()
                node_answer = client.complete(prompt, max_tokens)
                node_s.append(time.perf_counter() - started)
    same_usage = reference["usage"]["completion_tokens"] == node_answer["usage"]["completion_tokens"] and (
        reference["usage"]["prompt_tokens"] == node_answer["usage"]["prompt_tokens"]
    )
    same_text = (
        reference["choices"][0]["message"]["content"] == node_answer["choices"][0]["message"]["content"]
    )

    # Single stream through the node, and llama-cpp-python's own streaming for its time to first token.
    singles: list[_Streamed] = []
    direct_ttfts: list[float] = []
    for _ in range(repeats):
        singles.append(client.stream(prompt, max_tokens))
        direct_ttfts.append(_direct_ttft(direct, prompt, max_tokens))

    # Concurrent streams through the node.
    results: list[_Streamed | BaseException] = []
    barrier = threading.Barrier(concurrency + 1)
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        try:
            outcome: _Streamed | BaseException = client.stream(prompt, max_tokens)
        except BaseException as exc:  # reported below
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise NodeError(f"{len(failures)} of {concurrency} concurrent requests failed: {failures[0]}")
    streams = [r for r in results if isinstance(r, _Streamed)]
    ttfts = sorted(s.ttft_s for s in streams)
    total_tokens = sum(s.completion_tokens for s in streams)

    n = singles[0].completion_tokens
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "llama_cpp_python": version("llama-cpp-python"),
            "model_runtime_variant": backend.runtime.variant if backend.runtime else None,
        },
        "model": backend.model_id,
        "model_load_s": round(load_s, 3),
        "node": {
            "max_concurrency": settings.max_concurrency,
            "threads_per_instance": settings.threads_per_instance,
            "max_queue": settings.max_queue,
        },
        "prompt_tokens": node_answer["usage"]["prompt_tokens"],
        "max_tokens": max_tokens,
        "single_stream": {
            "completion_tokens": n,
            "runs": repeats,
            "ttft_s": round(statistics.median(s.ttft_s for s in singles), 4),
            "total_s": round(statistics.median(s.total_s for s in singles), 4),
            "tokens_per_s": statistics.median(_rate(s.completion_tokens, s.total_s) for s in singles),
            "decode_tokens_per_s": statistics.median(
                _rate(s.completion_tokens - 1, s.last_at - s.first_at) for s in singles
            ),
            "direct_ttft_s": round(statistics.median(direct_ttfts), 4),
        },
        "concurrent": {
            "requests": concurrency,
            "completion_tokens": total_tokens,
            "wall_s": round(wall, 4),
            "aggregate_tokens_per_s": _rate(total_tokens, wall),
            "ttft_s": {
                "min": round(ttfts[0], 4),
                "median": round(statistics.median(ttfts), 4),
                "max": round(ttfts[-1], 4),
            },
        },
        "overhead": {
            "runs": repeats,
            "completion_tokens": node_answer["usage"]["completion_tokens"],
            "direct_median_s": round(statistics.median(direct_s), 4),
            "node_median_s": round(statistics.median(node_s), 4),
            "ratio": round(statistics.median(node_s) / statistics.median(direct_s), 4),
            "same_usage": same_usage,
            "same_text": same_text,
        },
    }

"""The node's Prometheus metrics, on a registry of its own (so several nodes can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bme.node.backends import Usage

CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class NodeMetrics:
    """Requests, rejections, tokens in and out, latency, time to first token, queue depth, in-flight,
    backend readiness and model runtime restarts."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "bme_node_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.rejections = Counter(
            "bme_node_rejections",
            "Requests refused before or during a completion, by reason.",
            ["reason"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "bme_node_prompt_tokens",
            "Prompt tokens of completed requests (what users are charged).",
            ["model"],
            registry=r,
        )
        self.completion_tokens = Counter(
            "bme_node_completion_tokens", "Completion tokens of completed requests.", ["model"], registry=r
        )
        self.completions = Counter(
            "bme_node_completions",
            "Completions finished, by finish reason.",
            ["model", "finish_reason"],
            registry=r,
        )
        self.latency = Histogram(
            "bme_node_request_duration_seconds",
            "Time from request to the last byte of the response.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "bme_node_time_to_first_token_seconds",
            "Time from a streamed request to its first text.",
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "bme_node_queue_depth", "Requests waiting for a completion slot.", registry=r
        )
        self.inflight = Gauge("bme_node_inflight", "Completions running.", registry=r)
        self.backend_ready = Gauge(
            "bme_node_backend_ready",
            "1 when a completion can start now, 0 while the model is down.",
            registry=r,
        )
        self.model_restarts = Gauge(
            "bme_node_model_restarts",
            "Restarts of crashed model runtime workers since the node started.",
            registry=r,
        )

    def watch_gate(self, queued: Callable[[], float], active: Callable[[], float]) -> None:
        """Reads the queue depth and in-flight count from the gate at each scrape."""
        self.queue_depth.set_function(queued)
        self.inflight.set_function(active)

    def watch_backend(self, ready: Callable[[], float], restarts: Callable[[], float]) -> None:
        """Reads the backend's readiness and its model runtime restarts at each scrape."""
        self.backend_ready.set_function(ready)
        self.model_restarts.set_function(restarts)

    def record_usage(self, model: str, finish_reason: str, usage: Usage) -> None:
        self.prompt_tokens.labels(model).inc(usage.prompt_tokens)
        self.completion_tokens.labels(model).inc(usage.completion_tokens)
        self.completions.labels(model, finish_reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""The relayer's Prometheus metrics, in a registry of its own (several relayers may share a process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _JobsByState(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self):  # type: ignore[no-untyped-def]
        family = GaugeMetricFamily("bme_relayer_jobs", "Jobs in the store, by state.", labels=["state"])
        for state, n in sorted(self._counts().items()):
            family.add_metric([state], n)
        yield family


class RelayerMetrics:
    """Counters, gauges and histograms of ingestion, dispatch and settlement."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "bme_relayer_events_ingested", "Events ingested, by name.", ["event"], registry=r
        )
        self.rpc_errors = Counter(
            "bme_relayer_rpc_errors", "JSON-RPC calls that failed, by method.", ["method"], registry=r
        )
        self.reorgs = Counter("bme_relayer_reorgs", "Chain reorganisations rolled back.", registry=r)
        self.head = Gauge("bme_relayer_head_block", "The chain's head as last read.", registry=r)
        self.checkpoint = Gauge("bme_relayer_checkpoint_block", "The last block fully ingested.", registry=r)
        self.dispatch_outcomes = Counter(
            "bme_relayer_dispatches", "Calls of operators, by outcome.", ["outcome"], registry=r
        )
        self.jobs_failed = Counter("bme_relayer_jobs_failed", "Jobs failed for good.", registry=r)
        self.dispatch_latency = Histogram(
            "bme_relayer_dispatch_latency_seconds",
            "From sending a job to an operator to its answer.",
            buckets=_FAST,
            registry=r,
        )
        self.operator_latency = Histogram(
            "bme_relayer_operator_latency_seconds", "Successful calls' duration.", buckets=_FAST, registry=r
        )
        self.settlement_lag = Histogram(
            "bme_relayer_settlement_lag_seconds",
            "From a job's answer to its settlement being mined.",
            buckets=_FAST,
            registry=r,
        )
        self.settlements = Counter(
            "bme_relayer_settlements", "Settlement transactions, by outcome.", ["outcome"], registry=r
        )
        self.settled_jobs = Counter("bme_relayer_jobs_settled", "Jobs settled by this relayer.", registry=r)
        self.usage_disputes = Counter(
            "bme_relayer_usage_disputes",
            "Answers whose reported usage exceeded the relayer's count beyond the tolerance, by operator.",
            ["operator"],
            registry=r,
        )
        self.tokens_not_settled = Counter(
            "bme_relayer_reported_tokens_not_settled",
            "Tokens operators reported beyond what their jobs were settled for, by operator.",
            ["operator"],
            registry=r,
        )
        self.count_seconds = Histogram(
            "bme_relayer_usage_count_seconds",
            "CPU time the relayer spent counting a job's tokens.",
            buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1),
            registry=r,
        )
        self.fee_bumps = Counter(
            "bme_relayer_fee_bumps", "Stuck settlements re-sent with a higher fee.", registry=r
        )

    def watch_jobs(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobsByState(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)

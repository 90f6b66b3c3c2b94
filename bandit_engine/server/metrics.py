"""Prometheus metrics over HTTP (``--metrics-port``).

Series:

- ``bandit_rpc_requests_total{method,code}`` and
  ``bandit_rpc_latency_seconds{method}`` (histogram), from a server
  interceptor;
- ``bandit_decisions_total{experiment}``,
  ``bandit_rewards_total{experiment,outcome}`` (applied, defaulted,
  duplicate, late), ``bandit_model_version{experiment}``,
  ``bandit_pending_decisions``, ``bandit_rewards_unknown_total``,
  ``bandit_decisions_dropped_total`` (Kafka buffer full),
  ``bandit_log_pruned_rows_total{table}`` (``--log-retention``), read from
  the engine at scrape time;
- with a learner (in-process, or ``bandit-engine learn --metrics-port``):
  ``bandit_learner_commits_total``, ``bandit_learner_rewards_applied_total``,
  ``bandit_learner_rewards_forwarded_total``,
  ``bandit_learner_lag_records``, ``bandit_learner_lag_seconds``,
  ``bandit_learner_reward_to_posterior_seconds`` and
  ``bandit_learner_checkpoint_seconds`` (recent p50/p99).

Each server has a registry of its own, so several servers in one process
(tests) do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["Metrics"]

_OUTCOMES = ("applied", "defaulted", "duplicate", "late")


class Metrics:
    """Registry, RPC interceptor and engine collector of one server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bandit_rpc_requests",
            "RPCs by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bandit_rpc_latency_seconds",
            "RPC latency by method",
            ["method"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self._sources: list[Callable[[], Iterator[Metric]]] = []
        self.registry.register(self)
        self.http: Any = None
        self.port = 0

    def watch_engine(self, engine: Any) -> None:
        self._sources.append(lambda: _engine_metrics(engine))

    def watch_learner(self, learner: Any) -> None:
        self._sources.append(lambda: _learner_metrics(learner))

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source()

    def serve(self, host: str, port: int) -> int:
        """Expose /metrics over HTTP; returns the port (0 picks a free one)."""
        self.http, _ = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self.http.server_port)
        return self.port

    def close(self) -> None:
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None

    def interceptor(self) -> grpc.ServerInterceptor:
        return _RpcMetrics(self)


class _RpcMetrics(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        m = self.m

        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(request, context)
            finally:
                m.latency.labels(method).observe(time.perf_counter() - t0)
                code = context.code() or grpc.StatusCode.OK
                m.requests.labels(method, code.name).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _engine_metrics(engine: Any) -> Iterator[Metric]:
    decisions = CounterMetricFamily("bandit_decisions", "Decisions served", labels=["experiment"])
    rewards = CounterMetricFamily(
        "bandit_rewards", "Rewards by outcome", labels=["experiment", "outcome"]
    )
    version = GaugeMetricFamily("bandit_model_version", "Model version", labels=["experiment"])
    for info in engine.list_experiments():
        exp = info.config.experiment_id
        decisions.add_metric([exp], info.counters.get("decisions", 0))
        for outcome in _OUTCOMES:
            rewards.add_metric([exp, outcome], info.counters.get(f"rewards_{outcome}", 0))
        version.add_metric([exp], info.model_version)
    yield decisions
    yield rewards
    yield version
    yield GaugeMetricFamily(
        "bandit_pending_decisions", "Decisions waiting for rewards", value=engine.pending_count()
    )
    yield CounterMetricFamily(
        "bandit_rewards_unknown", "Feedback for unknown events", value=engine.unknown_rewards
    )
    yield CounterMetricFamily(
        "bandit_decisions_dropped",
        "Decisions dropped (log buffer full)",
        value=engine.decisions_dropped,
    )
    pruned = CounterMetricFamily(
        "bandit_log_pruned_rows", "Log rows deleted by --log-retention", labels=["table"]
    )
    pruned.add_metric(["decisions"], engine.pruned_decisions)
    pruned.add_metric(["rewards"], engine.pruned_rewards)
    yield pruned


def _learner_metrics(learner: Any) -> Iterator[Metric]:
    import numpy as np

    yield CounterMetricFamily("bandit_learner_commits", "Learner commits", value=learner.commits)
    yield CounterMetricFamily(
        "bandit_learner_rewards_applied", "Rewards applied by the learner", value=learner.applied
    )
    yield CounterMetricFamily(
        "bandit_learner_rewards_forwarded",
        "Rewards forwarded to the partition of their decision",
        value=learner.forwarded,
    )
    records, seconds = learner.lag()
    yield GaugeMetricFamily(
        "bandit_learner_lag_records", "Records not yet processed", value=records
    )
    yield GaugeMetricFamily(
        "bandit_learner_lag_seconds", "Age of the newest record seen, while behind", value=seconds
    )
    for name, values, scale, help_ in (
        (
            "bandit_learner_reward_to_posterior_seconds",
            learner.latency_ms,
            1000.0,
            "Recent reward-to-posterior latency",
        ),
        (
            "bandit_learner_checkpoint_seconds",
            learner.commit_seconds,
            1.0,
            "Recent commit (checkpoint) duration",
        ),
    ):
        g = GaugeMetricFamily(name, help_, labels=["quantile"])
        arr = np.asarray(list(values)[-10_000:])
        if arr.size:
            for q in (0.5, 0.99):
                g.add_metric([str(q)], float(np.quantile(arr, q)) / scale)
        yield g

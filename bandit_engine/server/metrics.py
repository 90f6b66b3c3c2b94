"""Prometheus metrics over HTTP (``--metrics-port``).

Series:

- ``bandit_rpc_requests_total{method,code}`` and
  ``bandit_rpc_latency_seconds{method}`` (histogram), from a server
  interceptor placed before the others, so that calls refused by auth or
  shed by ``max_concurrent_rpcs`` count too. ``method`` is the method's
  short name for the server's own methods and gRPC health, and ``other``
  for any other path (a made-up name, reflection), so that callers cannot
  add series;
- ``bandit_decisions_total{experiment}``,
  ``bandit_rewards_total{experiment,outcome}`` (applied, defaulted,
  duplicate, late), ``bandit_model_version{experiment}``,
  ``bandit_pending_decisions``, ``bandit_rewards_unknown_total``,
  ``bandit_decisions_dropped_total`` (Kafka buffer full),
  ``bandit_log_pruned_rows_total{table}`` (``--log-retention``), read from
  the engine at scrape time;
- challengers (``docs/challengers.md``): ``bandit_challenger_{ips,snips,dr}``
  and their ``_low``/``_high`` 95% bounds, ``bandit_challenger_ess`` and
  ``bandit_challenger_rows``, labelled ``{experiment,challenger}``;
  ``bandit_champion_value`` (and ``_low``/``_high``) ``{experiment}``;
- with a learner (in-process, or ``bandit-engine learn --metrics-port``):
  ``bandit_learner_commits_total``, ``bandit_learner_rewards_applied_total``,
  ``bandit_learner_rewards_forwarded_total``,
  ``bandit_learner_parts_written_total``, ``bandit_learner_parts_absorbed_total``,
  ``bandit_learner_lag_records``, ``bandit_learner_lag_seconds``,
  ``bandit_learner_reward_to_posterior_seconds`` and
  ``bandit_learner_checkpoint_seconds`` (recent p50/p99);
- the garbage collector's pauses (``server.gc_pauses``):
  ``bandit_gc_pause_seconds{generation}`` (histogram),
  ``bandit_gc_pause_max_seconds{generation}`` (the longest since start) and
  ``bandit_gc_frozen_objects`` (``--no-gc-freeze``: 0).

Each server has a registry of its own, so several servers in one process
(tests) do not collide.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer

from bandit_engine.server.gc_pauses import BUCKETS, PAUSES
from bandit_engine.server.security import TLSConfig, TokenChecker

__all__ = ["METRICS_SCOPES", "OTHER_METHOD", "Metrics"]

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
        self._sources: list[Callable[[], Iterator[Metric]]] = [_gc_metrics]
        PAUSES.install()
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

    def serve(
        self,
        host: str,
        port: int,
        tokens: Mapping[str, frozenset[str]] | None = None,
        tls: TLSConfig | None = None,
    ) -> int:
        """Expose /metrics over HTTP (HTTPS with ``tls``); returns the port
        (0 picks a free one). With ``tokens``, a request needs
        ``Authorization: Bearer`` with a token of scope ``metrics`` or
        ``admin``: the series name every experiment."""
        app = make_wsgi_app(self.registry)
        if tokens:
            app = _bearer_only(app, TokenChecker(tokens))
        httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        if tls is not None:
            httpd.socket = tls.server_context().wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
        thread.start()
        self.http = httpd
        self.port = int(httpd.server_port)
        return self.port

    def close(self) -> None:
        if self.http is not None:
            self.http.shutdown()
            self.http.server_close()
            self.http = None

    def interceptor(self, methods: Iterable[str]) -> grpc.ServerInterceptor:
        """The RPC interceptor; ``methods``: the full method names
        (``/package.Service/Method``) that get a label of their own."""
        return _RpcMetrics(self, methods)


#: The ``method`` label of every call outside the known methods.
OTHER_METHOD = "other"


class _RpcMetrics(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: Metrics, methods: Iterable[str]) -> None:
        self.m = metrics
        self.labels = {full: full.rsplit("/", 1)[-1] for full in methods}

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        method = self.labels.get(details.method, OTHER_METHOD)
        handler = continuation(details)
        if handler is None:
            self.m.requests.labels(method, grpc.StatusCode.UNIMPLEMENTED.name).inc()
            return handler
        if handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        m = self.m

        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            t0 = time.perf_counter()
            failed = True
            try:
                response = inner(request, context)
                failed = False
                return response
            finally:
                m.latency.labels(method).observe(time.perf_counter() - t0)
                # an exception without a status is UNKNOWN to the caller
                default = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                m.requests.labels(method, (context.code() or default).name).inc()

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


#: The scopes that may read /metrics.
METRICS_SCOPES = ("metrics", "admin")


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bearer_only(app: Callable[..., Any], checker: TokenChecker) -> Callable[..., Any]:
    """The WSGI ``app`` behind a bearer-token check (``METRICS_SCOPES``)."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        status, reason = checker.check_header(environ.get("HTTP_AUTHORIZATION", ""), METRICS_SCOPES)
        if status == 0:
            return app(environ, start_response)
        line = "401 Unauthorized" if status == 401 else "403 Forbidden"
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        if status == 401:
            headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
        start_response(line, headers)
        return [f"{reason}\n".encode()]

    return guarded


def _gc_metrics() -> Iterator[Metric]:
    hist = HistogramMetricFamily(
        "bandit_gc_pause_seconds", "Garbage-collection pauses", labels=["generation"]
    )
    longest = GaugeMetricFamily(
        "bandit_gc_pause_max_seconds", "Longest garbage collection", labels=["generation"]
    )
    bounds = [*(str(b) for b in BUCKETS), "+Inf"]
    for gen, g in enumerate(PAUSES.snapshot()):
        cumulative = list(itertools.accumulate(g.buckets))
        hist.add_metric([str(gen)], list(zip(bounds, cumulative, strict=True)), g.seconds)
        longest.add_metric([str(gen)], g.max_seconds)
    yield hist
    yield longest
    yield GaugeMetricFamily(
        "bandit_gc_frozen_objects",
        "Objects in the permanent generation",
        value=gc.get_freeze_count(),
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
    yield from _challenger_metrics(engine)


_ESTIMATORS = ("ips", "snips", "dr")


def _challenger_metrics(engine: Any) -> Iterator[Metric]:
    """The challengers' estimates over the window (``core.shadow``), and the
    champion's on-policy mean; labels: experiment, challenger name."""
    lab = ["experiment", "challenger"]
    fams: dict[str, GaugeMetricFamily] = {}
    for est in _ESTIMATORS:
        for part, what in (("", "estimate"), ("_low", "95% interval low"), ("_high", "95% high")):
            name = f"bandit_challenger_{est}{part}"
            fams[name] = GaugeMetricFamily(name, f"Challenger {est.upper()} {what}", labels=lab)
    ess = GaugeMetricFamily("bandit_challenger_ess", "Challenger effective sample size", labels=lab)
    rows = GaugeMetricFamily("bandit_challenger_rows", "Rewarded shadow decisions", labels=lab)
    champ = {
        f"bandit_champion_value{part}": GaugeMetricFamily(
            f"bandit_champion_value{part}",
            f"Champion's mean first-slot reward on shadow decisions{part.replace('_', ' ')}",
            labels=["experiment"],
        )
        for part in ("", "_low", "_high")
    }
    for exp_id in engine.experiments():
        try:
            estimates = engine.challengers.estimates(exp_id)
        except Exception:  # removed or broken meanwhile: no series
            continue
        for e in estimates:
            if e.role == "champion":
                for part, v in (("", e.ips), ("_low", e.ips_low), ("_high", e.ips_high)):
                    if v is not None and e.n:
                        champ[f"bandit_champion_value{part}"].add_metric([exp_id], v)
                continue
            ess.add_metric([exp_id, e.name], e.ess)
            rows.add_metric([exp_id, e.name], e.n)
            for est in _ESTIMATORS:
                for part in ("", "_low", "_high"):
                    v = getattr(e, est + part)
                    if v is not None:
                        fams[f"bandit_challenger_{est}{part}"].add_metric([exp_id, e.name], v)
    yield from fams.values()
    yield ess
    yield rows
    yield from champ.values()


def _learner_metrics(learner: Any) -> Iterator[Metric]:
    import numpy as np

    yield CounterMetricFamily("bandit_learner_commits", "Learner commits", value=learner.commits)
    c = learner.committer
    yield CounterMetricFamily(
        "bandit_learner_parts_written",
        "Experiments' evidence stored beside their snapshots (learners sharing partitions)",
        value=c.parts_written,
    )
    yield CounterMetricFamily(
        "bandit_learner_parts_absorbed",
        "Stored parts absorbed into snapshots by this learner",
        value=c.parts_absorbed,
    )
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

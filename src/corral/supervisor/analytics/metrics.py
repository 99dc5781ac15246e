"""Prometheus metrics, in a registry of the application's own (no process-global state).

Counters and histograms are fed by the request middleware; gauges (loaded models, queue
depth, stream sessions, dropped analytics rows, child restarts) are read at scrape time from
the objects that own them, so they can never drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from corral.supervisor.appkeys import ANALYTICS, MANAGER, METRICS, STREAMS
from corral.supervisor.child_process import ChildProcess
from corral.supervisor.http.request_facts import RequestFacts
from corral.supervisor.remote.metrics import upstream_metrics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class _LiveCollector(Collector):
    def __init__(
        self, read: Callable[[], Iterator[GaugeMetricFamily | CounterMetricFamily]]
    ) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return self._read()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "corral_requests",
            "HTTP requests by route group, action and status",
            ["group", "action", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "corral_request_latency_seconds",
            "HTTP request latency (for streams: until the stream ended)",
            ["group"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "corral_time_to_first_token_seconds",
            "Time from request to the first generated token",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "corral_prompt_tokens", "Prompt tokens processed", ["model"], registry=self.registry
        )
        self.completion_tokens = Counter(
            "corral_completion_tokens", "Tokens generated", ["model"], registry=self.registry
        )

        self.audio_seconds = Counter(
            "corral_audio_seconds",
            "Seconds of audio transcribed (in) and synthesised (out)",
            ["model", "direction"],
            registry=self.registry,
        )

    def observe_request(
        self, group: str, action: str, status: int, seconds: float, facts: RequestFacts
    ) -> None:
        self.requests.labels(group, action, str(status)).inc()
        self.latency.labels(group).observe(seconds)
        if facts.model is not None:
            self.prompt_tokens.labels(facts.model).inc(facts.prompt_tokens or 0)
            self.completion_tokens.labels(facts.model).inc(facts.completion_tokens or 0)
            if facts.ttft_ms is not None:
                self.ttft.labels(facts.model).observe(facts.ttft_ms / 1000)
            if facts.audio_seconds_in:
                self.audio_seconds.labels(facts.model, "in").inc(facts.audio_seconds_in)
            if facts.audio_seconds_out:
                self.audio_seconds.labels(facts.model, "out").inc(facts.audio_seconds_out)

    def watch_app(self, app: web.Application) -> None:
        def read() -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
            manager = app[MANAGER]
            views = manager.views.values()
            loaded = GaugeMetricFamily("corral_models_loaded", "Models loaded now")
            loaded.add_metric([], sum(1 for v in views if v.state == "loaded"))
            yield loaded
            queue = GaugeMetricFamily("corral_queue_depth", "Requests waiting for a model")
            queue.add_metric([], sum(v.queued for v in views))
            yield queue
            in_flight = GaugeMetricFamily("corral_requests_in_flight", "Generations running")
            in_flight.add_metric([], sum(v.in_flight for v in views))
            yield in_flight
            restarts = CounterMetricFamily(
                "corral_child_restarts",
                "Model processes that exited unexpectedly",
                labels=["model"],
            )
            for model_id, count in manager.restart_counts().items():
                restarts.add_metric([model_id], count)
            yield restarts
            yield from _slot_metrics(manager.children())
            yield from upstream_metrics(manager.children())
            sessions = GaugeMetricFamily("corral_stream_sessions", "Resumable stream sessions kept")
            sessions.add_metric([], len(app[STREAMS].registry))
            yield sessions
            writer = app.get(ANALYTICS)
            dropped = CounterMetricFamily(
                "corral_analytics_rows_dropped", "Analytics rows dropped because the queue was full"
            )
            dropped.add_metric([], writer.dropped if writer is not None else 0)
            yield dropped
            failed = CounterMetricFamily(
                "corral_analytics_rows_failed", "Analytics rows the database could not store"
            )
            failed.add_metric([], writer.failed if writer is not None else 0)
            yield failed

        self.registry.register(_LiveCollector(read))


def _slot_metrics(
    children: Mapping[str, ChildProcess],
) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    busy = GaugeMetricFamily("corral_slots_busy", "Slots decoding a request", labels=["model"])
    total = GaugeMetricFamily("corral_slots_total", "Slots of a loaded model", labels=["model"])
    cached = CounterMetricFamily(
        "corral_prompt_tokens_cached",
        "Prompt tokens served from a slot's KV cache instead of decoded",
        labels=["model"],
    )
    parked = GaugeMetricFamily(
        "corral_kv_parked_bytes", "Idle conversations' KV held in host memory", labels=["model"]
    )
    for model_id, child in children.items():
        if child.stats is not None and child.alive:
            busy.add_metric([model_id], child.stats.slots_busy)
            total.add_metric([model_id], child.stats.slots_total)
            cached.add_metric([model_id], child.stats.cached_tokens)
            parked.add_metric([model_id], child.stats.kv_parked_bytes)
    yield from (busy, total, cached, parked)


async def metrics_route(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

"""Prometheus metrics. Labels are low-cardinality only: source, provider, reason, status class.

Each app owns its own :class:`Metrics` (and registry), so tests and several apps in one process
never share counters. Outbox gauges are read from the outbox when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.backfill.run import BackfillReport
from gateway.outbox import OutboxStats

PREFIX = "webhook_gateway"
UNKNOWN_SOURCE = "_unknown"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _OutboxCollector(Collector):
    def __init__(self, stats: Callable[[], OutboxStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        depth = GaugeMetricFamily(
            f"{PREFIX}_outbox_depth", "Events stored and not yet delivered.", labels=["state"]
        )
        depth.add_metric(["pending"], stats.pending)
        depth.add_metric(["retrying"], stats.retrying)
        depth.add_metric(["leased"], stats.leased)
        yield depth
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_age_seconds",
            "Age of the oldest undelivered event.",
            value=stats.oldest_pending_age,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_dead_letters", "Dead-lettered events in the outbox.", value=stats.dead
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_quarantined",
            "Webhooks held because their transform failed.",
            value=stats.quarantined,
        )


class Metrics:
    """Every metric the gateway exports; also the forwarder's metrics sink."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            f"{PREFIX}_webhooks_received",
            "Webhook requests received.",
            ["source", "provider"],
            registry=r,
        )
        self.accepted = Counter(
            f"{PREFIX}_webhooks_accepted",
            "Webhooks verified and stored.",
            ["source", "provider"],
            registry=r,
        )
        self.rejected = Counter(
            f"{PREFIX}_webhooks_rejected",
            "Webhook requests refused, by reason.",
            ["source", "provider", "reason"],
            registry=r,
        )
        self.http_refused = Counter(
            f"{PREFIX}_http_refused",
            "Requests and connections refused by the HTTP layer's limits and timeouts, by reason.",
            ["reason"],
            registry=r,
        )
        self.handshakes = Counter(
            f"{PREFIX}_handshakes",
            "Handshakes answered (challenges, pings).",
            ["source", "provider"],
            registry=r,
        )
        self.verification_seconds = Histogram(
            f"{PREFIX}_verification_seconds",
            "Time spent verifying signatures.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ack_seconds = Histogram(
            f"{PREFIX}_ack_seconds",
            "Time from request start to acknowledgement.",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.transform_errors = Counter(
            f"{PREFIX}_transform_errors",
            "Transforms that raised or returned invalid events.",
            ["source"],
            registry=r,
        )
        self.name_warnings = Counter(
            f"{PREFIX}_event_name_warnings",
            "Events whose name breaks prefix/noun.verb.",
            ["source"],
            registry=r,
        )
        self.events_accepted = Counter(
            f"{PREFIX}_events_accepted", "Events stored for forwarding.", ["source"], registry=r
        )
        self.duplicates = Counter(
            f"{PREFIX}_duplicates_skipped",
            "Events skipped: id seen within the dedup window.",
            ["source"],
            registry=r,
        )
        self.forwarded = Counter(
            f"{PREFIX}_events_forwarded", "Events the Event API accepted.", registry=r
        )
        self.forward_attempts = Counter(
            f"{PREFIX}_forward_attempts",
            "Requests to the Event API, by status class.",
            ["status_class"],
            registry=r,
        )
        self.forward_failures = Counter(
            f"{PREFIX}_forward_failures",
            "Failed requests to the Event API, by status class.",
            ["status_class"],
            registry=r,
        )
        self.batch_events = Histogram(
            f"{PREFIX}_batch_events",
            "Events per request to the Event API.",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.batch_bytes = Histogram(
            f"{PREFIX}_batch_bytes",
            "Bytes per request to the Event API.",
            buckets=(1024, 8192, 65536, 131072, 262144, 524288, 1048576, 3145728),
            registry=r,
        )
        self.commit_seconds = Histogram(
            f"{PREFIX}_outbox_commit_seconds",
            "Outbox write transactions, BEGIN to durable COMMIT (the fsync included).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters", "Events moved to the dead-letter store.", registry=r
        )
        self.console_auth_failures = Counter(
            f"{PREFIX}_console_auth_failures",
            "Console requests refused: missing or wrong credentials, or too little scope.",
            ["reason"],
            registry=r,
        )
        self.backfill_items = Counter(
            f"{PREFIX}_backfill_items",
            "Items backfill runs handled: found, duplicate, recovered, filtered, failed.",
            ["source", "state"],
            registry=r,
        )
        self.backfill_runs = Counter(
            f"{PREFIX}_backfill_runs",
            "Backfill runs by how they ended: ok, auth_failed, rate_limited, interrupted, error.",
            ["source", "state"],
            registry=r,
        )
        self.backfill_last_success = Gauge(
            f"{PREFIX}_backfill_last_success_timestamp_seconds",
            "When the source's last backfill run ended without error (Unix seconds).",
            ["source"],
            registry=r,
        )
        self.degraded = Gauge(
            f"{PREFIX}_event_api_degraded",
            "1 while the Event API refuses the event key or its URL answers something else.",
            registry=r,
        )

    def refused_http(self, reason: str) -> None:
        """Count a refusal by the public port's protocol (gateway.http_server)."""
        self.http_refused.labels(reason).inc()

    def watch_outbox(self, stats: Callable[[], OutboxStats | None]) -> None:
        """Export outbox depth and age, read from ``stats`` at each scrape."""
        self.registry.register(_OutboxCollector(stats))

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

    # The forwarder's metrics sink (gateway.forwarder.ForwarderMetrics).
    def forwarded_events(self, n: int) -> None:
        self.forwarded.inc(n)

    def attempt(self, status_class: str) -> None:
        self.forward_attempts.labels(status_class).inc()

    def failure(self, status_class: str) -> None:
        self.forward_failures.labels(status_class).inc()

    def batch(self, size_events: int, size_bytes: int) -> None:
        self.batch_events.observe(size_events)
        self.batch_bytes.observe(size_bytes)

    def dead_lettered(self, n: int) -> None:
        self.dead_letters.inc(n)

    def backfill_run(self, report: BackfillReport) -> None:
        """Count one backfill run's items and how it ended."""
        items = self.backfill_items
        for state, n in (
            ("found", report.found),
            ("duplicate", report.duplicates),
            ("recovered", report.recovered),
            ("filtered", report.filtered),
            ("failed", report.failed),
        ):
            items.labels(report.source, state).inc(n)
        self.backfill_runs.labels(report.source, report.status).inc()
        if report.status == "ok":
            self.backfill_last_success.labels(report.source).set(report.finished_at or 0)

    def set_degraded(self, degraded: bool) -> None:
        self.degraded.set(1 if degraded else 0)

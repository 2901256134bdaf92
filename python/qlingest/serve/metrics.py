"""The sidecar's Prometheus metrics, on a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Counters, gauges and histograms; ``render`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = "qlingest"
        self.received = Counter(f"{p}_events_received", "Events accepted", ["receiver"], registry=r)
        self.written = Counter(f"{p}_events_written", "Events committed to Parquet", registry=r)
        self.dead_lettered = Counter(
            f"{p}_events_dead_lettered", "Events sent to dead letters", ["reason"], registry=r
        )
        self.rejected_events = Counter(
            f"{p}_events_rejected", "OTLP records refused (partial success)", ["reason"], registry=r
        )
        self.rejected_requests = Counter(
            f"{p}_requests_rejected", "Requests or connections refused", ["reason"], registry=r
        )
        self.sampled_out = Counter(
            f"{p}_events_sampled_out", "Events dropped by sampling", ["reason"], registry=r
        )
        self.redactions = Counter(f"{p}_redactions", "Redactions", ["rule"], registry=r)
        self.requests = Counter(f"{p}_requests", "Requests answered", ["route", "code"], registry=r)
        self.wal_commit = Histogram(
            f"{p}_wal_commit_seconds",
            "Log group commit: write and fsync",
            registry=r,
            buckets=_LATENCY,
        )
        self.batch = Histogram(
            f"{p}_batch_seconds",
            "Decoding and buffering one log record",
            registry=r,
            buckets=_LATENCY,
        )
        self.commit = Histogram(
            f"{p}_commit_seconds",
            "Committing buffered partitions to Parquet",
            registry=r,
            buckets=_LATENCY,
        )
        self.queue_bytes = Gauge(f"{p}_queue_bytes", "Bytes accepted, not yet decoded", registry=r)
        self.buffer_bytes = Gauge(f"{p}_buffer_bytes", "Bytes decoded, not committed", registry=r)
        self.wal_bytes = Gauge(f"{p}_wal_bytes", "Bytes in log segments on disk", registry=r)
        self.connections = Gauge(f"{p}_connections", "Open connections", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

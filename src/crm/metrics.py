"""The process's Prometheus metrics, on the official client library, summed across worker
processes when they share a multiprocess directory.

`crm serve --workers N` gives its workers one private directory (PROMETHEUS_MULTIPROC_DIR): each
process writes its counters and histograms to memory-mapped files there and a scrape, whichever
worker answers it, reads and sums them all. The library picks its storage when it is first
imported, so the directory must be in the environment before the process starts; a process
started without one keeps its metrics in memory and reports only its own (one worker, tests).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import prometheus_client
from prometheus_client import values as prometheus_values
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LabelValues = tuple[str, ...]
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds; covers a cached key lookup (ms) up to a slow password hash or a stuck database.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# How often a worker copies its own process figures (memory, CPU, files) into the shared files.
_PROCESS_REFRESH_SECONDS = 10.0

# `_created` samples double every series and mean nothing summed across processes.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    """The shared directory this process writes its metrics to, or None (in-memory metrics)."""
    if prometheus_values.ValueClass is prometheus_values.MutexValue:
        return None
    return os.environ.get(MULTIPROC_ENV)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _sample(metric: Any, name: str, labels: Sequence[str]) -> float:
    """One sample of this process's own value (tests read what this process recorded)."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name == name and tuple(sample.labels.values()) == tuple(labels):
                return float(sample.value)
    return 0.0


class Counter:
    """A labelled counter: `inc(*labels)`."""

    def __init__(
        self, name: str, help_text: str, labels: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self._metric = prometheus_client.Counter(name, help_text, labels, registry=registry)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        target = self._metric.labels(*labels) if labels else self._metric
        target.inc(amount)

    def value(self, *labels: str) -> float:
        return _sample(self._metric, self.name, labels)


class Histogram:
    """A labelled histogram: `observe(value, *labels)`."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        buckets: Iterable[float] = HTTP_BUCKETS,
    ) -> None:
        self.name = name
        self._metric = prometheus_client.Histogram(
            name, help_text, labels, registry=registry, buckets=tuple(buckets)
        )

    def observe(self, value: float, *labels: str) -> None:
        target = self._metric.labels(*labels) if labels else self._metric
        target.observe(value)

    def count(self, *labels: str) -> int:
        return int(_sample(self._metric, f"{self.name}_count", labels))


GaugeMode = Literal["all", "liveall", "min", "max", "sum", "mostrecent", "livemostrecent"]


class Gauge:
    """A labelled gauge set by the process; across processes it reads as `mode` says."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str],
        registry: CollectorRegistry,
        mode: GaugeMode,
    ) -> None:
        self.name = name
        self._metric = prometheus_client.Gauge(
            name, help_text, labels, registry=registry, multiprocess_mode=mode
        )

    def set(self, value: float, *labels: str) -> None:
        target = self._metric.labels(*labels) if labels else self._metric
        target.set(value)

    def value(self, *labels: str) -> float:
        return _sample(self._metric, self.name, labels)


class ComputedGauge:
    """A gauge whose samples are computed at scrape time (e.g. counted in the database), so the
    same in every process: rendered directly, never stored."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)

    def render_samples(self, samples: Iterable[tuple[LabelValues, float]]) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        lines += [
            f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in sorted(samples)
        ]
        return lines


def route_template(scope: Mapping[str, Any]) -> str:
    """The matched route's template with its router prefix (`/backoffice/v1/contacts/{ref}`).

    FastAPI hands the middleware the route as declared in its router, without the prefix it was
    included under; the prefix is the literal start of the path that the template's pattern does
    not cover (prefixes hold no parameters here).
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "<unmatched>"
    pattern = getattr(route, "path_regex", None)
    path = str(scope.get("path", ""))
    if pattern is None or pattern.match(path):
        return template
    for index, char in enumerate(path):
        if index and char == "/" and pattern.match(path[index:]):
            return path[:index] + template
    return template


class _ProcessFigures:
    """Each worker's process figures (memory, CPU, open files, start time) as gauges labelled by
    pid in the shared files. The library's process collector reads only the process answering
    the scrape, which would jump between workers from one scrape to the next; instead every
    worker copies its own figures there at most every few seconds while it serves requests, and
    the answering worker just before the scrape. A worker that has exited keeps its last figures
    until the server restarts (its pid names them)."""

    _NAMES = (
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
    )

    def __init__(self, registry: CollectorRegistry) -> None:
        self._reader = prometheus_client.ProcessCollector(registry=None)
        self._gauges = {
            name: prometheus_client.Gauge(
                name,
                f"{name.replace('_', ' ')} of each server process (label pid).",
                registry=registry,
                multiprocess_mode="all",
            )
            for name in self._NAMES
        }
        self._lock = threading.Lock()
        self._last = -math.inf

    def refresh(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < _PROCESS_REFRESH_SECONDS:
                return
            self._last = now
        for family in self._reader.collect():
            for sample in family.samples:
                gauge = self._gauges.get(sample.name)
                if gauge is not None:
                    gauge.set(sample.value)


class Registry:
    """The process's metrics. Prometheus metrics are per process by nature, as is logging,
    which is why one registry per process (below) is shared rather than hung on the runtime."""

    def __init__(self) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_dir() is not None
        r = self._registry
        self.http_requests = Counter(
            "crm_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            r,
        )
        self.http_duration = Histogram(
            "crm_http_request_duration_seconds",
            "HTTP request latency in seconds, by method and route template.",
            ("method", "route"),
            r,
        )
        self.delivery_attempts = Counter(
            "crm_outbox_delivery_attempts_total",
            "Delivery attempts made by the server's processes, by channel and outcome "
            "(sent, retry, failed, cancelled, possibly_sent, lost_lease).",
            ("channel", "outcome"),
            r,
        )
        self.delivery_duration = Histogram(
            "crm_outbox_delivery_duration_seconds",
            "Time a provider took to accept or refuse one message, by channel.",
            ("channel",),
            r,
        )
        self.sms_blocked = Counter(
            "crm_sms_blocked_total",
            "SMS refused by the pumping defence, by reason (country_not_allowed, daily_limit, "
            "number_range, low_conversion).",
            ("reason",),
            r,
        )
        self.sms_would_block = Counter(
            "crm_sms_would_block_total",
            "SMS a defence in record-only mode would have refused, by reason (sent anyway).",
            ("reason",),
            r,
        )
        # The most recent value any process set: the share grows with each send, whichever
        # worker counted it.
        self.sms_daily_used = Gauge(
            "crm_sms_daily_budget_used_ratio",
            "Share of the day's SMS budget a tenant has used, set from 80% on by the process "
            "that counted the send.",
            ("tenant_id", "mode"),
            r,
            "mostrecent",
        )
        self.events_written = Counter(
            "crm_events_written_total",
            "Events written (committed or not: counted when added to a transaction), by type.",
            ("type",),
            r,
        )
        self.webhook_deliveries = Counter(
            "crm_webhook_deliveries_total",
            "Webhook POSTs made, by outcome (sent, retry, failed, cancelled).",
            ("outcome",),
            r,
        )
        self._process: _ProcessFigures | None = None
        if self.multiprocess:
            self._process = _ProcessFigures(r)
        else:
            # One process: the library's own process and runtime collectors describe it whole.
            prometheus_client.ProcessCollector(registry=r)
            prometheus_client.GCCollector(registry=r)
        prometheus_client.PlatformCollector(registry=r)

    def observe_request(self, scope: Mapping[str, Any], status: int, seconds: float) -> None:
        """Record one HTTP request under its route template, so label cardinality is bounded."""
        method = str(scope.get("method", ""))
        method = method if method in _KNOWN_METHODS else "OTHER"
        route = route_template(scope)
        self.http_requests.inc(method, route, str(status))
        self.http_duration.observe(seconds, method, route)
        if self._process is not None:
            self._process.refresh()

    def render(self) -> str:
        """The text exposition: every process's samples summed when they share a directory."""
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self._registry).decode("utf-8")
        if self._process is not None:
            self._process.refresh(force=True)
        # A fresh registry per scrape, as the library prescribes: the collector reads the files.
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=path)  # type: ignore[no-untyped-call]
        prometheus_client.PlatformCollector(registry=merged)
        return generate_latest(merged).decode("utf-8")


REGISTRY = Registry()

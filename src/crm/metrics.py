"""A small in-process Prometheus registry: counters, gauges and histograms in the text format."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LabelValues = tuple[str, ...]

# Seconds; covers a cached key lookup (ms) up to a slow password hash or a stuck database.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        # Handlers run on one event loop, but the worker may record from threads (to_thread).
        self._lock = threading.Lock()

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        lines = self._header()
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


class Histogram(_Metric):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Iterable[float] = HTTP_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            counts, totals = self._series.setdefault(labels, ([0] * len(self.buckets), [0.0, 0.0]))
            for index, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[index] += 1
            totals[0] += 1
            totals[1] += value

    def count(self, *labels: str) -> int:
        with self._lock:
            series = self._series.get(labels)
            return int(series[1][0]) if series else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), list(t))) for k, (c, t) in self._series.items())
        lines = self._header()
        for key, (counts, (total_count, total_sum)) in items:
            for bound, count in zip(self.buckets, counts, strict=True):
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {count}")
            inf = 'le="+Inf"'
            lines.append(
                f"{self.name}_bucket{_labels(self.label_names, key, inf)} {_number(total_count)}"
            )
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(total_sum)}")
            lines.append(
                f"{self.name}_count{_labels(self.label_names, key)} {_number(total_count)}"
            )
        return lines


class Gauge(_Metric):
    """A gauge whose samples are set by the process, or supplied at render time (e.g. counted
    from the database)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[LabelValues, float] = {}

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = value

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render_samples(self, samples: Iterable[tuple[LabelValues, float]]) -> list[str]:
        lines = self._header()
        lines += [
            f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in sorted(samples)
        ]
        return lines

    def render(self) -> list[str]:
        with self._lock:
            items = list(self._values.items())
        return self.render_samples(items)


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


class Registry:
    """The process's metrics. Prometheus metrics are per process by nature, as is logging,
    which is why one registry per process (below) is shared rather than hung on the runtime."""

    def __init__(self) -> None:
        self.http_requests = Counter(
            "crm_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
        )
        self.http_duration = Histogram(
            "crm_http_request_duration_seconds",
            "HTTP request latency in seconds, by method and route template.",
            ("method", "route"),
        )
        self.delivery_attempts = Counter(
            "crm_outbox_delivery_attempts_total",
            "Delivery attempts made by this process, by channel and outcome "
            "(sent, retry, failed, cancelled, possibly_sent, lost_lease).",
            ("channel", "outcome"),
        )
        self.delivery_duration = Histogram(
            "crm_outbox_delivery_duration_seconds",
            "Time a provider took to accept or refuse one message, by channel.",
            ("channel",),
        )
        self.sms_blocked = Counter(
            "crm_sms_blocked_total",
            "SMS refused by the pumping defence, by reason (country_not_allowed, daily_limit, "
            "number_range, low_conversion).",
            ("reason",),
        )
        self.sms_would_block = Counter(
            "crm_sms_would_block_total",
            "SMS a defence in record-only mode would have refused, by reason (sent anyway).",
            ("reason",),
        )
        self.sms_daily_used = Gauge(
            "crm_sms_daily_budget_used_ratio",
            "Share of the day's SMS budget a tenant has used, set from 80% on by the process "
            "that counted the send.",
            ("tenant_id", "mode"),
        )

    def observe_request(self, scope: Mapping[str, Any], status: int, seconds: float) -> None:
        """Record one HTTP request under its route template, so label cardinality is bounded."""
        method = str(scope.get("method", ""))
        method = method if method in _KNOWN_METHODS else "OTHER"
        route = route_template(scope)
        self.http_requests.inc(method, route, str(status))
        self.http_duration.observe(seconds, method, route)

    def render(self) -> list[str]:
        lines: list[str] = []
        for metric in (
            self.http_requests,
            self.http_duration,
            self.delivery_attempts,
            self.delivery_duration,
            self.sms_blocked,
            self.sms_would_block,
            self.sms_daily_used,
        ):
            lines += metric.render()
        return lines


REGISTRY = Registry()

"""Prometheus metrics at ``/metrics`` (prometheus-client), one registry per app.

Requests by route and status, bytes received, write latency (PATCH and part requests),
uploads by state (read from the catalog at scrape time), uploads being written right now,
hook deliveries and failures, bytes reclaimed by the sweeper.

With several workers (``--workers``) a scrape reaches one of them, so every worker keeps its
values in prometheus-client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by the
supervisor before anything is imported) and a scrape sums them: its own counters, and the
figures the service keeps in memory, which each worker copies there as they change.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from chunkd.uploads.models import UploadState
from chunkd.uploads.service import UploadService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_WRITES = frozenset({"PATCH", "PUT"})


class _Snapshot(Collector):
    """Values read from the service when scraped (the catalog part is refreshed first); with
    workers, only the catalog's (the rest is in the shared files, see ``_Shared``)."""

    def __init__(self, service: UploadService, *, catalog_only: bool = False) -> None:
        self.service = service
        self.by_state: dict[str, int] = {}
        self._catalog_only = catalog_only

    def collect(self) -> Iterator[Metric]:
        uploads = GaugeMetricFamily("chunkd_uploads", "Uploads by state", labels=["state"])
        for state in UploadState:
            uploads.add_metric([str(state)], self.by_state.get(str(state), 0))
        yield uploads
        if self._catalog_only:
            return
        active = GaugeMetricFamily("chunkd_active_uploads", "Uploads being written right now")
        active.add_metric([], self.service.locker.active())
        yield active
        hooks = self.service.hooks
        yield CounterMetricFamily(
            "chunkd_hook_deliveries", "Hook calls delivered", value=hooks.deliveries
        )
        yield CounterMetricFamily(
            "chunkd_hook_failures", "Hook calls that failed", value=hooks.failures
        )
        yield CounterMetricFamily(
            "chunkd_swept_bytes",
            "Bytes reclaimed by the expiry sweeper",
            value=self.service.swept_bytes,
        )


class _Shared:
    """A worker's in-memory figures, copied into the shared files as they change."""

    def __init__(self, service: UploadService, registry: CollectorRegistry) -> None:
        self.service = service
        self.active = Gauge(
            "chunkd_active_uploads",
            "Uploads being written right now",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.deliveries = Counter(
            "chunkd_hook_deliveries", "Hook calls delivered", registry=registry
        )
        self.failures = Counter("chunkd_hook_failures", "Hook calls that failed", registry=registry)
        self.swept = Counter(
            "chunkd_swept_bytes", "Bytes reclaimed by the expiry sweeper", registry=registry
        )
        self._copied = [0, 0, 0]

    async def keep_copying(self, every: float = 5.0) -> None:
        while True:
            self.copy()
            await asyncio.sleep(every)

    def copy(self) -> None:
        service = self.service
        self.active.set(service.locker.active())
        now = [service.hooks.deliveries, service.hooks.failures, service.swept_bytes]
        for counter, before, value in zip(
            (self.deliveries, self.failures, self.swept), self._copied, now, strict=True
        ):
            if value > before:
                counter.inc(value - before)
        self._copied = now


def route_of(scope: Scope) -> str:
    """The matched route's template (``/files/{upload_id}``): ids never become labels."""
    if "endpoint" not in scope:
        return "unmatched"
    path = str(scope.get("root_path", "")) + str(scope["path"])
    for name, value in (scope.get("path_params") or {}).items():
        if value not in (None, ""):
            head, sep, tail = path.rpartition(str(value))
            path = f"{head}{{{name}}}{tail}" if sep else path
    return path


class Metrics:
    def __init__(self, service: UploadService) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chunkd_requests",
            "HTTP requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.received = Counter(
            "chunkd_received_bytes", "Request body bytes received", registry=self.registry
        )
        self.latency = Histogram(
            "chunkd_write_seconds",
            "Duration of PATCH and part requests",
            ["method"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self._shared_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self._snapshot = _Snapshot(service, catalog_only=self._shared_dir is not None)
        self.shared = None if self._shared_dir is None else _Shared(service, self.registry)
        self.registry.register(self._snapshot)

    def record(self, scope: Scope, status: int, received: int, seconds: float) -> None:
        """One finished request (called by the access log, which already counts its bytes)."""
        name = route_of(scope)
        method = scope["method"]
        self.requests.labels(name, method, str(status)).inc()
        self.received.inc(received)
        if method in _WRITES:
            self.latency.labels(method).observe(seconds)
        if self.shared is not None:
            self.shared.copy()

    async def endpoint(self, request: Request) -> Response:
        totals = await self._snapshot.service.catalog.totals()
        by_state: dict[str, int] = {}
        for row in totals:
            by_state[str(row.state)] = by_state.get(str(row.state), 0) + row.uploads
        self._snapshot.by_state = by_state
        registry = self.registry
        if self.shared is not None:  # every worker's values, summed from their files
            self.shared.copy()
            registry = CollectorRegistry()
            MultiProcessCollector(registry, self._shared_dir)  # type: ignore[no-untyped-call]
            registry.register(self._snapshot)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE)

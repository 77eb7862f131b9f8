"""The endpoint daemon's Prometheus metrics (``compute_endpoint_*``), and the HTTP server that serves them.

Two kinds, for two reasons:

* events (a task received, a result published, the broker reconnecting) are
  counted where they happen, on the daemon's loop: ``EndpointMetrics``;
* levels (tasks outstanding, managers, workers, blocks) are read from the
  daemon's status on every scrape, the same data ``compute-endpoint status
  --json`` shows: ``StatusCollector`` in metrics_state.py.

The server answers scrapes on its own threads; prometheus_client's metric
objects take their own locks, and the status is read on the daemon's loop (see
metrics_state.py), so nothing here touches the daemon's state from another thread.
"""

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ..config import ConfigError, MetricsConfig
from ..protocol import ErrorKind, InterchangeStatus, ProtocolError, Result
from .inflight import InflightTask
from .metrics_state import StatusCollector

log = logging.getLogger(__name__)

PREFIX = "compute_endpoint"

# From a trivial function on a warm worker to a long batch job.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                   1800.0, 3600.0, 4 * 3600.0, float("inf"))

# The `_created` series double every counter and no dashboard of ours reads them.
disable_created_metrics()


class EndpointMetrics:
    """Every metric of one endpoint daemon, in a registry of its own (not prometheus_client's global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for make in (ProcessCollector, PlatformCollector, GCCollector):  # process_*, python_info, python_gc_*
            make(registry=self.registry)
        self.tasks_received = self._counter("tasks_received", "Tasks taken from the broker to run (a task "
                                            "redelivered while held, or just finished, is not counted again)")
        self.tasks_completed = self._counter("tasks_completed", "Tasks whose successful result the broker confirmed")
        self.tasks_failed = self._counter("tasks_failed", "Tasks whose failure the broker confirmed, by why they "
                                          "failed (the SDK's error kinds: exception is the function raising)", ["kind"])
        self.tasks_retried = self._counter("tasks_retried", "Task runs started again: after a worker or manager "
                                           "died (system_failure) or the interchange restarted", ["reason"])
        self.messages_set_aside = self._counter("messages_set_aside", "Messages moved to the dead-letter queue "
                                                "instead of running, by reason", ["reason"])
        self.broker_reconnects = self._counter("broker_reconnects", "Times the daemon connected to the broker again "
                                               "after losing it")
        self.container_cold_starts = self._counter("container_cold_starts", "Container workers started for a task "
                                                   "(per-function containers)")
        self.container_warm_hits = self._counter("container_warm_hits", "Tasks that found an idle worker already in "
                                                 "their container (per-function containers)")
        self.task_latency = Histogram(f"{PREFIX}_task_latency_seconds", "Seconds from a task's arrival from the "
                                      "broker to the broker's confirmation of its result", buckets=LATENCY_BUCKETS,
                                      registry=self.registry)
        for kind in ErrorKind:  # every kind shows, as 0, before the first failure of it
            self.tasks_failed.labels(kind=kind.value)
        for reason in ("system_failure", "interchange_restart"):
            self.tasks_retried.labels(reason=reason)
        self.status = StatusCollector(self.registry, PREFIX)
        self._interchange: InterchangeStatus | None = None

    def _counter(self, name: str, doc: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, list(labels), registry=self.registry)

    # --- events, called on the daemon's loop ----------------------------------------

    def task_received(self) -> None:
        self.tasks_received.inc()

    def results_published(self, entries: Iterable[InflightTask]) -> None:
        """Results the broker confirmed: count each as completed or failed, and time it."""
        now = time.monotonic()
        for entry in entries:
            self.task_latency.observe(max(0.0, now - entry.received_at))
            try:
                result = Result.peek(entry.result or b"")
            except ProtocolError:
                self.tasks_failed.labels(kind="unreadable").inc()
                continue
            if result.ok:
                self.tasks_completed.inc()
            else:
                self.tasks_failed.labels(kind=str(result.error_kind or "unknown")).inc()

    def resent(self, count: int) -> None:
        """Tasks sent again to a restarted interchange."""
        self.tasks_retried.labels(reason="interchange_restart").inc(count)

    def set_aside(self, reason: str) -> None:
        self.messages_set_aside.labels(reason=reason).inc()

    def reconnected(self) -> None:
        self.broker_reconnects.inc()

    def observe_interchange(self, status: InterchangeStatus) -> None:
        """Fold the interchange's running totals into ours: a restarted interchange counts from 0 again."""
        previous = self._interchange
        same = previous is not None and previous.incarnation == status.incarnation
        self._interchange = status
        self.tasks_retried.labels(reason="system_failure").inc(
            _grown(status.retried, previous.retried if same and previous else 0))
        starts, before = status.container_starts, (previous.container_starts if same and previous else {})
        self.container_cold_starts.inc(_grown(starts.get("cold", 0), before.get("cold", 0)))
        self.container_warm_hits.inc(_grown(starts.get("warm", 0), before.get("warm", 0)))

    # --- levels, read on scrape -------------------------------------------------------

    def read_status_with(self, sample: Callable[[], dict[str, Any]],
                         on_loop: Callable[[Callable[[], None]], None]) -> None:
        """How to read the daemon's status: ``sample`` run on the daemon's loop through ``on_loop``."""
        self.status.attach(sample, on_loop)

    def names(self) -> set[str]:
        """Every sample name this registry can export (with _total, _bucket, _sum, _count), for the dashboard test."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",)}
        names: set[str] = set()
        for family in self.registry.collect():
            names.update(sample.name for sample in family.samples)
            names.update(f"{family.name}{suffix}" for suffix in suffixes.get(family.type, ("",)))
        return names


def _grown(now: Any, before: Any) -> int:
    """How much a running total grew (0 if it is not a number or went backwards)."""
    if not isinstance(now, int) or not isinstance(before, int):
        return 0
    return max(0, now - before)


class MetricsServer:
    """prometheus_client's HTTP server on the configured address, on a thread of its own."""

    def __init__(self, httpd: Any, thread: threading.Thread, where: str):
        self._httpd = httpd
        self._thread = thread
        self.where = where

    @classmethod
    def start(cls, config: MetricsConfig, metrics: EndpointMetrics, config_file: Path | str | None = None,
              ) -> "MetricsServer | None":
        """Listen at ``config.address`` (None when metrics are off); ConfigError names the address and why not."""
        if not config.enabled:
            return None
        try:
            httpd, thread = start_http_server(config.port, config.host, registry=metrics.registry)
        except OSError as exc:
            raise ConfigError("metrics.address", f"cannot serve metrics on {config.address}: {_why(exc)}",
                              str(config_file) if config_file else None) from None
        log.info("serving Prometheus metrics at http://%s/metrics", config.address)
        return cls(httpd, thread, str(config.address))

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def _why(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        return f"{reason}: another process listens there (another endpoint?); choose a free port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{reason}: no network interface of this host has that address"
    if exc.errno == errno.EACCES:
        return f"{reason}: ports below 1024 need privileges; choose a port above 1023"
    return reason

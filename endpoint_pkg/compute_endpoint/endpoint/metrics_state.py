"""Levels read from the daemon's status on every scrape: tasks outstanding, managers, workers, blocks.

The status (``StatusBuilder.as_dict``, what ``status --json`` shows) is built
on the daemon's loop, never on the scraping thread: the collector hands the
loop a callback and waits a moment for it. A loop too busy to answer in time,
or already stopped, gets the last status read instead.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from .status import SHOWN_STATES

log = logging.getLogger(__name__)

READ_TIMEOUT = 2.0  # seconds a scrape waits for the loop; Prometheus' own default timeout is 10 s


class StatusCollector(Collector):
    def __init__(self, registry: CollectorRegistry, prefix: str):
        self.prefix = prefix
        self._sample: Callable[[], dict[str, Any]] | None = None
        self._on_loop: Callable[[Callable[[], None]], None] | None = None
        self._last: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._block_states: set[str] = set()  # every state seen: one that empties shows 0, not a gap
        registry.register(self)

    def attach(self, sample: Callable[[], dict[str, Any]], on_loop: Callable[[Callable[[], None]], None]) -> None:
        self._sample, self._on_loop = sample, on_loop

    def read(self) -> dict[str, Any] | None:
        """The daemon's status, read on its loop; the last one read if the loop does not answer in time."""
        sample, on_loop = self._sample, self._on_loop
        if sample is None or on_loop is None:
            return None
        done = threading.Event()
        box: list[dict[str, Any]] = []

        def on_the_loop() -> None:
            try:
                box.append(sample())
            except Exception:  # a scrape must never take the daemon down
                log.exception("internal error reading the status for metrics")
            finally:
                done.set()

        try:
            on_loop(on_the_loop)
        except Exception:  # the loop is closed: the daemon is stopping
            pass
        else:
            done.wait(READ_TIMEOUT)
        with self._lock:
            if box:
                self._last = box[0]
            return self._last

    def describe(self) -> Iterator[Metric]:
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        return self._families(self.read())

    def _families(self, status: dict[str, Any] | None) -> Iterator[Metric]:
        p = self.prefix
        gauges = {
            "tasks_outstanding": ("tasks_outstanding", "Tasks received and not yet finished (result not confirmed)"),
            "tasks_queued_in_interchange": ("tasks_queued_in_interchange",
                                            "Tasks the interchange holds waiting for a worker"),
            "tasks_running": ("tasks_running", "Tasks the managers hold (running or queued at a manager)"),
            "capacity": ("capacity", "Task slots of the connected managers (workers plus prefetch)"),
            "managers_connected": ("managers", "Managers connected to the interchange"),
        }
        for name, (key, doc) in gauges.items():
            yield _gauge(f"{p}_{name}", doc, None if status is None else status.get(key, 0))
        yield from self._workers(status)
        yield from self._blocks(status)
        broker = (status or {}).get("broker") or {}
        yield _gauge(f"{p}_broker_connected", "1 while the daemon is connected to the broker",
                     None if status is None else int(bool(broker.get("connected"))))
        state = GaugeMetricFamily(f"{p}_state", "1 for the state the endpoint is in (as `list` and `status` show "
                                                "it)", labels=["state"])
        if status is not None:
            for name in SHOWN_STATES:
                state.add_metric([name], int(status.get("state") == name))
        yield state
        info = GaugeMetricFamily(f"{p}_info", "The endpoint's name, id and version (always 1)",
                                 labels=["name", "endpoint_id", "version"])
        if status is not None:
            info.add_metric([str(status.get("name")), str(status.get("endpoint_id")), str(status.get("version"))], 1)
        yield info
        totals = {"interchange_restarts": "Times the interchange was restarted by the daemon",
                  "managers_replaced": "Managers that exited unexpectedly and were replaced",
                  "internal_errors": "Internal errors caught by the daemon (each logged with its traceback)"}
        for key, doc in totals.items():
            family = CounterMetricFamily(f"{p}_{key}", doc)
            if status is not None:
                family.add_metric([], status.get(key) or 0)
            yield family

    def _workers(self, status: dict[str, Any] | None) -> Iterator[Metric]:
        workers = GaugeMetricFamily(f"{self.prefix}_workers", "Worker processes of the connected managers, idle "
                                                              "or busy", labels=["state"])
        if status is not None:
            idle = status.get("idle_workers", 0)
            workers.add_metric(["idle"], idle)
            workers.add_metric(["busy"], max(0, status.get("workers", 0) - idle))
        yield workers

    def _blocks(self, status: dict[str, Any] | None) -> Iterator[Metric]:
        blocks = GaugeMetricFamily(f"{self.prefix}_blocks", "The provider's blocks (batch jobs or local manager "
                                                            "processes) by state, as `status` lists them",
                                   labels=["state"])
        degraded = GaugeMetricFamily(f"{self.prefix}_degraded", "1 while every block the provider started has "
                                                                "failed: tasks cannot run until one starts")
        provider = (status or {}).get("provider")
        if status is not None:
            counts = Counter(str(block.get("state", "UNKNOWN")) for block in (provider or {}).get("blocks", []))
            with self._lock:  # scrapes may come on several threads at once
                self._block_states.update(counts)
                states = sorted(self._block_states)
            for state in states:
                blocks.add_metric([state], counts.get(state, 0))
            degraded.add_metric([], int(bool(status.get("degraded"))))
        yield blocks
        yield degraded


def _gauge(name: str, doc: str, value: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        family.add_metric([], value)
    return family

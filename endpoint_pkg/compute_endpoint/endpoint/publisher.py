"""The endpoint's result outbox: results waiting to go to the broker, and when they go.

A result the daemon holds is in exactly one place: waiting here, held here
after a publish that failed, or in a publish the broker has not confirmed
yet. A confirmed publish hands its results back (``on_confirmed``), and only
then does the daemon ack the task deliveries that brought them: that order
is the at-least-once rule. A publish the broker refused, or lost with its
channel, goes again after ``RETRY_DELAY`` or once the channel is back
(``resume``).

When results go: the broker's cost is per message, so under load they are
gathered into bundles, one per submitter. They wait while a publish awaits
its confirm, and, when more tasks are held than the workers can run at once
(a backlog), for up to ``LINGER`` seconds or until a bundle is full. Without
a backlog a result goes at once, so an interactive round trip pays nothing
for this.

A result the broker refuses outright (larger than it accepts, or to a key we
may no longer write) would come back forever. The broker closes the channel
over it, failing every publish in flight, so after a refusal the outbox is
*careful*: it publishes one result at a time until all it holds are through,
and a refusal then names its result for certain. Each is counted; after
``MAX_REFUSALS`` the result is replaced by a small failure that says why, and
if that is refused too it is handed to ``undeliverable`` (the dead-letter
queue).
"""

import time
from collections.abc import Callable
from typing import Protocol

import pika

from ..protocol import ErrorKind, Result, bundle_up, group_message_id, packed_group
from ..protocol.broker_names import RESULT_EXCHANGE
from .inflight import InflightTask

CONTENT_TYPE = "application/x-compute-result"
BUNDLE_ITEMS = 64  # results for one submitter travel together, up to this many
BUNDLE_BYTES = 4 * 2**20  # ... and this many bytes
PUBLISHES_IN_FLIGHT = 1
LINGER = 0.002
RETRY_DELAY = 1.0  # after the broker refused a publish, or the channel was lost
MAX_REFUSALS = 3

Confirmed = Callable[[list[InflightTask]], None]


class Publisher(Protocol):
    """What the outbox needs of the AMQP agent: ``last_refusal`` is the broker's reason while a refused publish
    is being failed, else None."""

    last_refusal: str | None

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
                on_confirm: Callable[[bool], None] | None = None, mandatory: bool = True) -> bool: ...


class Timers(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> object: ...


class ResultOutbox:
    def __init__(self, agent: Publisher, timers: Timers, backlog: Callable[[], bool], on_confirmed: Confirmed,
                 undeliverable: Callable[[InflightTask, str], None], clock: Callable[[], float] = time.monotonic):
        self._agent = agent
        self._timers = timers
        self._backlog = backlog
        self._on_confirmed = on_confirmed
        self._undeliverable = undeliverable
        self._clock = clock
        self._waiting: list[InflightTask] = []
        self._held: list[InflightTask] = []  # their publish failed: they go again on retry or resume
        self._oldest = 0.0  # when the oldest waiting result arrived
        self.in_flight = 0  # publishes awaiting their confirm
        self._flush_scheduled = False
        self._retry_scheduled = False
        self._careful = False  # one result at a time, since a refusal (see the module's docstring)

    def __len__(self) -> int:
        """Results not yet published."""
        return len(self._waiting) + len(self._held)

    def add(self, entries: list[InflightTask]) -> None:
        """Results from the interchange: they go now, or soon with others."""
        if not entries:
            return
        if not self._waiting:
            self._oldest = self._clock()
        self._waiting.extend(entries)
        if not self._flush_scheduled:
            self._flush()

    def send_now(self, entries: list[InflightTask]) -> None:
        """Results that must not wait (the endpoint's own refusals)."""
        self._send(entries)

    def resume(self) -> None:
        """Connected again: everything not yet published goes now."""
        entries, self._held, self._waiting = self._held + self._waiting, [], []
        self._send(entries)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._waiting or self.in_flight >= PUBLISHES_IN_FLIGHT:
            return  # a confirm will flush again
        if len(self._waiting) < BUNDLE_ITEMS and self._backlog():
            lingered = self._clock() - self._oldest
            if lingered < LINGER:
                self._schedule_flush(LINGER - lingered)
                return
        waiting, self._waiting = self._waiting, []
        self._send(waiting)

    def _schedule_flush(self, delay: float) -> None:
        self._flush_scheduled = True
        self._timers.call_later(delay, self._flush)

    def _send(self, entries: list[InflightTask]) -> None:
        if self._careful:
            self._held.extend(entries)
            self._send_carefully()
            return
        by_submitter: dict[str, list[InflightTask]] = {}
        for entry in entries:
            by_submitter.setdefault(entry.reply_to, []).append(entry)
        for reply_to, results in by_submitter.items():
            for chunk in bundle_up(results, BUNDLE_ITEMS, BUNDLE_BYTES, size=_result_size):
                self._publish(reply_to, chunk)

    def _send_carefully(self) -> None:
        if self.in_flight:
            return  # its confirm sends the next
        if not self._held:
            self._careful = False
            return
        entry = self._held.pop(0)
        self._publish(entry.reply_to, [entry], sole=True)

    def _publish(self, reply_to: str, chunk: list[InflightTask], sole: bool = False) -> None:
        props = pika.BasicProperties(message_id=group_message_id(chunk[0].task_id, len(chunk)), delivery_mode=2,
                                     content_type=CONTENT_TYPE)
        body = packed_group([entry.result for entry in chunk if entry.result is not None])
        if self._agent.publish(RESULT_EXCHANGE, reply_to, body, props,
                               on_confirm=lambda ok: self._settled(chunk, ok, sole)):
            self.in_flight += 1
        else:  # no channel now: they go when it is back (resume)
            self._held.extend(chunk)

    def _settled(self, chunk: list[InflightTask], ok: bool, sole: bool) -> None:
        self.in_flight -= 1
        refusal = None if ok else self._agent.last_refusal
        if ok:
            self._on_confirmed(chunk)
        elif refusal:
            self._careful = True
            self._held.extend(entry for entry in chunk if not self._refused(entry, refusal, sole))
        else:
            self._held.extend(chunk)
        if not ok and not self._retry_scheduled:
            self._retry_scheduled = True
            self._timers.call_later(RETRY_DELAY, self._retry)
        elif ok and self._careful:
            self._send_carefully()
        if self._waiting and not self._flush_scheduled:
            self._schedule_flush(0)

    def _refused(self, entry: InflightTask, refusal: str, sole: bool) -> bool:
        """Count a refusal; True once the result has been handed to ``undeliverable`` (nothing left to send)."""
        # With other publishes in flight the fault may be another's: counted only once it went alone.
        entry.publish_refusals = entry.publish_refusals + 1 if sole else max(entry.publish_refusals, 1)
        if entry.publish_refusals == MAX_REFUSALS:
            entry.result = Result.failure(
                entry.task_id, ErrorKind.UNDELIVERABLE, error_type="ResultUndeliverable", finished_at=time.time(),
                message=f"the task ran, but the broker refused its result {MAX_REFUSALS} times "
                        f"({len(entry.result or b'')} bytes): {refusal}").pack()
        elif entry.publish_refusals >= 2 * MAX_REFUSALS:
            self._undeliverable(entry, refusal)
            return True
        return False

    def _retry(self) -> None:
        self._retry_scheduled = False
        held, self._held = self._held, []
        self._send(held)


def _result_size(entry: InflightTask) -> int:
    return len(entry.result or b"")

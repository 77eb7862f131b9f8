"""Stand-ins for pika's ioloop and channel, for unit tests of the code that drives them.

They record what was asked of them and let the test play the broker's part:
open the channel, answer each declaration, confirm or nack publishes, cancel
a consumer, close the channel. Nothing here decides anything the code under
test is about.
"""

from dataclasses import dataclass, field
from types import SimpleNamespace

import pika.spec


class ManualClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLoop:
    """``call_later`` against a manual clock; ``advance()`` runs what became due, in order."""

    def __init__(self, clock: ManualClock | None = None):
        self.clock = clock or ManualClock()
        self.timers: list[tuple[float, int, object]] = []
        self._seq = 0

    def call_later(self, delay: float, callback) -> int:
        self._seq += 1
        self.timers.append((self.clock.now + delay, self._seq, callback))
        return self._seq

    def advance(self, seconds: float = 0.0) -> None:
        self.clock.now += seconds
        while True:
            due = sorted(t for t in self.timers if t[0] <= self.clock.now)
            if not due:
                return
            self.timers.remove(due[0])
            due[0][2]()

    def pending(self) -> list[float]:
        """Delays from now of the timers not yet run."""
        return sorted(when - self.clock.now for when, _, _ in self.timers)


def confirm_frame(tag: int, multiple: bool = False, ack: bool = True) -> SimpleNamespace:
    method = pika.spec.Basic.Ack(tag, multiple) if ack else pika.spec.Basic.Nack(tag, multiple)
    return SimpleNamespace(method=method)


@dataclass
class Call:
    name: str
    args: tuple
    kwargs: dict


@dataclass
class FakeChannel:
    """Records every channel method; the callbacks it was given are the test's to fire."""

    is_open: bool = True
    calls: list[Call] = field(default_factory=list)
    callbacks: dict = field(default_factory=dict)
    consumers: dict = field(default_factory=dict)  # consumer tag -> queue
    consumer_count: int = 1  # what a passive queue.declare reports
    _tags: int = 0

    def _record(self, name: str, *args, **kwargs) -> Call:
        call = Call(name, args, kwargs)
        self.calls.append(call)
        return call

    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    def last(self, name: str) -> Call:
        return next(call for call in reversed(self.calls) if call.name == name)

    def answer(self) -> None:
        """The broker answers the oldest request still waiting for its reply."""
        for call in self.calls:
            callback = call.kwargs.get("callback")
            if callback is not None and not getattr(call, "answered", False):
                call.answered = True  # type: ignore[attr-defined]
                # A passive queue.declare reports its consumers: ours, and any other daemon's (consumer_count).
                callback(SimpleNamespace(method=SimpleNamespace(consumer_count=self.consumer_count, message_count=0)))
                return
        raise AssertionError("no request is waiting for an answer")

    def answer_all(self) -> None:
        while any(c.kwargs.get("callback") and not getattr(c, "answered", False) for c in self.calls):
            self.answer()

    # --- the pika.channel.Channel methods the code uses ---

    def add_on_close_callback(self, cb):
        self.callbacks["close"] = cb

    def add_on_return_callback(self, cb):
        self.callbacks["return"] = cb

    def add_on_cancel_callback(self, cb):
        self.callbacks["cancel"] = cb

    def confirm_delivery(self, ack_nack_callback, callback=None):
        self.callbacks["confirm"] = ack_nack_callback
        self._record("confirm_delivery", callback=callback)

    def exchange_declare(self, exchange, exchange_type, passive=False, durable=False, callback=None):
        self._record("exchange_declare", exchange, passive=passive, callback=callback)

    def queue_declare(self, queue, durable=False, arguments=None, callback=None, **kwargs):
        self._record("queue_declare", queue, arguments=arguments, callback=callback, **kwargs)

    def queue_bind(self, queue, exchange, routing_key=None, callback=None):
        self._record("queue_bind", queue, exchange, routing_key=routing_key, callback=callback)

    def basic_qos(self, prefetch_count=0, callback=None):
        self._record("basic_qos", prefetch_count=prefetch_count, callback=callback)

    def basic_consume(self, queue, on_message_callback, callback=None, **kwargs):
        self._tags += 1
        tag = f"ctag{self._tags}"
        self.consumers[tag] = queue
        self._record("basic_consume", queue, on_message=on_message_callback, tag=tag, callback=callback)
        return tag

    def basic_cancel(self, consumer_tag, callback=None):
        self.consumers.pop(consumer_tag, None)
        self._record("basic_cancel", consumer_tag)

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        self._record("basic_publish", exchange, routing_key, body, properties=properties)

    def basic_ack(self, delivery_tag=0, multiple=False):
        self._record("basic_ack", delivery_tag)

    def close(self):
        self.is_open = False
        self._record("close")

    # --- what the broker does ---

    def confirm(self, tag: int, multiple: bool = False, ack: bool = True) -> None:
        self.callbacks["confirm"](confirm_frame(tag, multiple, ack))

    def cancel_consumer(self, tag: str) -> None:
        self.consumers.pop(tag, None)
        self.callbacks["cancel"](SimpleNamespace(method=pika.spec.Basic.Cancel(consumer_tag=tag)))

    def closed_by_broker(self, reason: BaseException) -> None:
        self.is_open = False
        self.callbacks["close"](self, reason)


class FakeConnection:
    def __init__(self):
        self.is_open = True
        self.is_closed = False
        self.is_closing = False
        self.channels_opened = 0

    def close(self):
        self.is_open = False
        self.is_closing = True

    def channel(self, on_open_callback=None):
        self.channels_opened += 1

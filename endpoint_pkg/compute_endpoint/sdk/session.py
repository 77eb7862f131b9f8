"""The SDK's AMQP session: one connection on a background thread.

Publishes tasks with publisher confirms and consumes results from this
session's own durable result queue. If the connection drops, every task not
yet confirmed goes back to the head of the outbox and is published again
after reconnecting (with backoff); results wait in the durable queue
meanwhile. Duplicates this may cause are dropped by task id by the Executor.
"""

import itertools
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection

from ..broker import (
    ConfirmTracker,
    NodeRotation,
    ReplyCode,
    describe_connection_error,
    queue_arguments,
    reply_code,
    reply_text,
    server_summary,
    supports_quorum,
    where,
)
from ..protocol import bundle_up, group_message_id, packed_group
from ..protocol.broker_names import RESULT_EXCHANGE, ReplyAddress

log = logging.getLogger(__name__)

RESULT_QUEUE_EXPIRES_MS = 24 * 3600 * 1000
# Tasks queued together for one endpoint travel as one message (a Bundle) of at most:
BUNDLE_MAX_ITEMS = 32
BUNDLE_MAX_BYTES = 4 * 2**20
# While this many messages await the broker's confirm, further tasks wait and then
# leave together: large bundles under load, no waiting for a lone submission.
PUBLISHES_IN_FLIGHT = 4
CONFIRM_CHECK_PERIOD = 1.0
NACK_RETRY_DELAY = 0.5  # refused (nacked) tasks go again after this

Item = tuple[str, str, bytes, str]  # exchange, routing key, packed message, message id


class BrokerSession:
    def __init__(self, nodes: list[pika.ConnectionParameters], identity: str,
                 on_result: Callable[[bytes, pika.BasicProperties], None],
                 on_returned: Callable[[str, str], None],
                 on_refused: Callable[[str], None],
                 result_queue_expires_ms: int = RESULT_QUEUE_EXPIRES_MS):
        self._nodes = NodeRotation(nodes)
        self.reconnects = 0
        self.identity = identity
        self.reply = ReplyAddress(identity, uuid.uuid4().hex)
        self._on_result = on_result
        self._on_returned = on_returned
        self._on_refused = on_refused
        self._expires = result_queue_expires_ms
        self._ioloop = IOLoop()
        self._connection: SelectConnection | None = None
        self._channel: Any = None  # a pika Channel while one is open (pika ships no type information)
        self._outbox: deque[Item] = deque()
        self._unconfirmed: ConfirmTracker[list[Item]] = ConfirmTracker()
        self._flush_scheduled = False
        self._lock = threading.Lock()
        self._closing = False
        self._delete_queue_on_close = False
        # Counted apart from the outbox and the in-flight dict: items move between those two
        # on the session thread, and another thread reading both could see an item in neither.
        self._not_confirmed = 0
        self.ready = threading.Event()
        self.first_error: str | None = None
        self.fatal_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="compute-sdk-amqp", daemon=True)

    # --- public, any thread --------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def publish(self, exchange: str, routing_key: str, body: bytes, message_id: str) -> None:
        with self._lock:
            self._outbox.append((exchange, routing_key, body, message_id))
            self._not_confirmed += 1
            if self._flush_scheduled:
                return
            self._flush_scheduled = True
        self._ioloop.add_callback_threadsafe(self._flush)

    def close(self, delete_queue: bool, timeout: float = 10.0) -> None:
        self._delete_queue_on_close = delete_queue
        if self._thread.is_alive():
            self._ioloop.add_callback_threadsafe(self._begin_close)
            self._thread.join(timeout)

    def unconfirmed(self) -> int:
        with self._lock:
            return self._not_confirmed

    # --- the session thread --------------------------------------------------

    def _run(self) -> None:
        self._connect()
        self._ioloop.call_later(CONFIRM_CHECK_PERIOD, self._check_confirms)
        try:
            self._ioloop.start()
        except Exception as exc:  # a bug here must fail the futures, not leave them waiting for ever
            log.exception("the SDK's broker session stopped on an internal error")
            self.fatal_error = f"the SDK's broker session stopped on an internal error: {type(exc).__name__}: {exc}"
            self.ready.set()
            self._on_refused(self.fatal_error)
        self._ioloop.close()

    def _check_confirms(self) -> None:
        """Tasks unconfirmed too long, or refused again and again: a new channel (and connection) sends them again."""
        if self._closing:
            return
        stuck = self._unconfirmed.stuck()
        if stuck and self._channel is not None and self._channel.is_open:
            log.warning("the broker at %s %s; reconnecting to send the tasks again", self.node, stuck)
            self._channel.close()
        self._ioloop.call_later(CONFIRM_CHECK_PERIOD, self._check_confirms)

    def _connect(self) -> None:
        self._connection = SelectConnection(self._nodes.take(), on_open_callback=self._on_open,
                                            on_open_error_callback=self._on_open_error,
                                            on_close_callback=self._on_closed, custom_ioloop=self._ioloop)

    def _on_open_error(self, _conn: SelectConnection, error: BaseException) -> None:
        fatal, message = describe_connection_error(error, self._nodes.current, self.identity)
        if self._closing:
            self._ioloop.stop()
            return
        self.first_error = self.first_error or message
        if fatal:
            self.fatal_error = message
            self.ready.set()  # wake the constructor so it can raise
            self._ioloop.stop()
            return
        self._retry(message, self._nodes.failed())

    def _on_closed(self, _conn: SelectConnection, reason: BaseException) -> None:
        self._channel = None
        self.ready.clear()
        self._requeue_unconfirmed()
        if self._closing:
            self._ioloop.stop()
            return
        self.reconnects += 1
        self._retry(f"connection to {where(self._nodes.current)} lost: {reason}", self._nodes.lost())

    def _retry(self, message: str, delay: float) -> None:
        log.warning("%s; reconnecting in %.1fs to %s", message, delay, where(self._nodes.peek()))
        self._ioloop.call_later(delay, lambda: None if self._closing else self._connect())

    def _on_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        channel.confirm_delivery(self._on_confirm, callback=lambda _f: self._declare())

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._channel = None
        code = reply_code(reason)
        if code == ReplyCode.ACCESS_REFUSED and self.ready.is_set():
            # A publish was refused (e.g. to an endpoint of another identity). Retrying
            # cannot help: fail what was in flight and stop publishing it.
            refused = [item for group in self._unconfirmed.reset() for item in group]
            self._on_refused(f"the broker refused identity {self.identity!r}: {reply_text(reason)}")
            log.error("%s (%d tasks failed)", reply_text(reason), len(refused))
        elif code in (ReplyCode.ACCESS_REFUSED, ReplyCode.NOT_FOUND) and not self.ready.is_set():
            if code == ReplyCode.ACCESS_REFUSED:
                self.fatal_error = (f"the broker refused identity {self.identity!r} ({reply_text(reason)}); "
                                    "check its permissions (see README: Broker setup)")
            else:
                self.fatal_error = (f"the broker has no exchange {RESULT_EXCHANGE!r}: no endpoint has been started "
                                    f"on this broker yet ({reply_text(reason)})")
            self.ready.set()
            self._closing = True
        if self._connection and self._connection.is_open:
            self._connection.close()

    def _declare(self, on_consuming: Callable[[], None] | None = None) -> None:
        """Declare and bind this session's result queue, then consume it."""
        ch, reply = self._channel, self.reply
        # Quorum where the broker has it: results wait in it while this session moves to another node.
        version = server_summary(self._server_properties())["version"]
        args = queue_arguments({"x-expires": self._expires}, supports_quorum(version))
        done = on_consuming or self._on_ready

        def bound(_frame: Any) -> None:
            ch.basic_qos(prefetch_count=1000, callback=lambda _f: ch.basic_consume(
                reply.queue, self._on_message, callback=lambda _f: done()))

        ch.queue_declare(reply.queue, durable=True, arguments=args,
                         callback=lambda _f: ch.queue_bind(reply.queue, RESULT_EXCHANGE, reply.key, callback=bound))

    def _server_properties(self) -> dict | None:
        conn = self._connection
        return getattr(conn, "server_properties", None) if conn is not None else None

    @property
    def node(self) -> str:
        """host:port of the broker node this session uses (or tries next)."""
        return where(self._nodes.current)

    def _on_consumer_cancelled(self, _frame: Any) -> None:
        """The broker cancelled our consumer: the result queue was deleted, or moved. Declare it again."""
        if self._closing or self._channel is None or not self._channel.is_open:
            return  # closing deletes the queue itself: the cancel is the echo of that
        log.warning("the broker cancelled the consumer of %s (deleted or moved); declaring it again", self.reply.queue)
        self._declare(on_consuming=lambda: None)

    def _on_ready(self) -> None:
        self._nodes.connected()
        self.ready.set()
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            if (self._channel is None or not self._channel.is_open or not self.ready.is_set()
                    or len(self._unconfirmed) >= PUBLISHES_IN_FLIGHT):
                return  # (a channel being replaced is closing: the next one flushes once ready)
            items, self._outbox = self._outbox, deque()
        groups = _bundles(list(items))
        room = PUBLISHES_IN_FLIGHT - len(self._unconfirmed)
        if len(groups) > room:
            # Regroup what cannot go yet, so that it leaves in full bundles later.
            held = [item for group in groups[room:] for item in group]
            groups = groups[:room]
            with self._lock:
                self._outbox.extendleft(reversed(held))
        for group in groups:
            exchange, key = group[0][:2]
            body = packed_group([item[2] for item in group])
            # user_id: RabbitMQ checks it is ours; the endpoint runs tasks only from identities it allows.
            props = pika.BasicProperties(message_id=_message_id(group), delivery_mode=2, user_id=self.identity)
            self._channel.basic_publish(exchange, key, body, props, mandatory=True)
            self._unconfirmed.published(group, f"{exchange} {key}")

    def _on_confirm(self, frame: Any) -> None:
        ok, groups = self._unconfirmed.confirmed(frame)
        if not ok:
            with self._lock:
                self._outbox.extendleft(reversed([item for group in groups for item in group]))
                retry = not self._flush_scheduled
                self._flush_scheduled = True
            if retry:  # one retry for all the refusals of a moment, not one each
                self._ioloop.call_later(NACK_RETRY_DELAY, self._flush)
            return
        with self._lock:
            self._not_confirmed -= sum(len(group) for group in groups)
        if self._outbox:
            self._flush()

    def _on_return(self, _channel: Any, method: Any, properties: pika.BasicProperties, _body: bytes) -> None:
        returned = properties.message_id or ""
        group = next((g for g in self._unconfirmed.pending() if _message_id(g) == returned), None)
        for item in group or [("", "", b"", returned)]:
            self._on_returned(item[3], method.reply_text)

    def _on_message(self, channel: Any, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        try:
            self._on_result(body, properties)
        finally:
            channel.basic_ack(method.delivery_tag)

    def _requeue_unconfirmed(self) -> None:
        pending = [item for group in self._unconfirmed.reset() for item in group]
        if pending:
            with self._lock:
                self._outbox.extendleft(reversed(pending))

    def _begin_close(self) -> None:
        self._closing = True
        ch, conn = self._channel, self._connection
        if ch is not None and ch.is_open and conn is not None and self._delete_queue_on_close:
            ch.queue_delete(self.reply.queue, callback=lambda _f: conn.close())
        elif conn is not None and not (conn.is_closed or conn.is_closing):
            conn.close()  # open, or still opening (which this aborts)
        else:
            self._ioloop.stop()


def _bundles(items: list[Item]) -> list[list[Item]]:
    """Consecutive items for the same destination, grouped into bundle-sized runs."""
    groups: list[list[Item]] = []
    for _destination, run in itertools.groupby(items, key=lambda item: (item[0], item[1])):
        groups += bundle_up(list(run), BUNDLE_MAX_ITEMS, BUNDLE_MAX_BYTES, size=lambda item: len(item[2]))
    return groups


def _message_id(group: list[Item]) -> str:
    return group_message_id(group[0][3], len(group))

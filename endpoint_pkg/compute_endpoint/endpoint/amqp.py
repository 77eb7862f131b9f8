"""The endpoint's AMQP agent: all of the daemon's pika code, on pika's own ioloop.

Modelled on pika's asynchronous examples: explicit connection and channel
callbacks, a declaration chain run on every (re)connection, reconnecting to
the next broker node (``NodeRotation``), publisher confirms tracked by
delivery tag, a consumer the broker cancels is declared and started again,
and a clean stop that closes the channel, then the connection.

The daemon sees a small interface: callbacks ``on_ready``, ``on_lost``,
``on_fatal``, ``on_task``, ``on_command``, ``on_returned``; and methods
``publish``, ``ack``, ``set_prefetch``, ``pause_tasks``, ``stop``.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pika
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from ..broker import (
    ConfirmTracker,
    NodeRotation,
    ReplyCode,
    describe_connection_error,
    reply_code,
    reply_text,
    server_summary,
    where,
)
from ..protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, EndpointNames
from .declarations import Done, Step, alone_step, exchange_step, queue_steps
from .queues import EndpointQueues, QueueSettings
from .refusals import another_daemon, connection_refused, refusal_advice

log = logging.getLogger(__name__)

COMMAND_PREFETCH = 10
MAX_PREFETCH = 65_535  # basic.qos carries the count in 16 bits



def _unheeded(_ok: bool) -> None:
    """The confirm of a publish nobody waits on (status reports, command replies)."""


@dataclass(frozen=True)
class Delivery:
    """A message consumed from a queue; ``epoch`` says which channel it came on."""

    tag: int
    epoch: int
    redelivered: bool
    properties: pika.BasicProperties
    body: bytes


class AgentCallbacks(Protocol):
    def on_ready(self) -> None: ...
    def on_lost(self, reason: str) -> None: ...
    def on_fatal(self, message: str) -> None: ...
    def on_task(self, delivery: Delivery) -> None: ...
    def on_command(self, delivery: Delivery) -> None: ...
    def on_returned(self, message_id: str, reason: str) -> None: ...
    def on_stopped(self) -> None: ...


class AmqpAgent:
    def __init__(self, ioloop: IOLoop, nodes: list[pika.ConnectionParameters], names: EndpointNames,
                 callbacks: AgentCallbacks, identity: str, queues: QueueSettings = QueueSettings()):
        self._ioloop = ioloop
        self._nodes = NodeRotation(nodes)
        self.queues = EndpointQueues(names, queues)
        self.server: dict[str, str] = {}  # the node in use: its cluster's name and RabbitMQ version
        self.connections = 0  # connections made, the first included: more than one is a failover or reconnect
        self._names = names
        self._cb = callbacks
        self._identity = identity
        self._connection: SelectConnection | None = None
        self._channel: Any = None  # a pika Channel while one is open (pika ships no type information)
        self.epoch = 0
        self.ready = False
        self.was_ready = False  # consumed before: an "exclusive use" refusal is then our own stale consumer
        self._stopping = False
        self._prefetch: int | None = None  # None until the interchange reports its capacity
        self._passive_exchanges = True
        self._confirms: ConfirmTracker[Callable[[bool], None]] = ConfirmTracker()
        self._task_consumer: str | None = None
        self._command_consumer: str | None = None
        self._tasks_paused = False
        self.counts = {"deliveries": 0, "published": 0, "acks": 0}  # AMQP messages, for status
        # Why the broker closed the channel, while the publishes lost with it are told so (see ResultOutbox).
        self.last_refusal: str | None = None
        self._step = "connecting"

    # --- connection ------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._connect()

    @property
    def node(self) -> str:
        """host:port of the broker node in use (or tried next, while reconnecting)."""
        return where(self._nodes.current)

    def _connect(self) -> None:
        self._step = "connecting"
        self._connection = SelectConnection(
            self._nodes.take(), on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed, custom_ioloop=self._ioloop,
        )

    def _on_connection_open_error(self, _conn: SelectConnection, error: BaseException) -> None:
        fatal, message = describe_connection_error(error, self._nodes.current, self._identity)
        if fatal:
            self._cb.on_fatal(message)
        elif not self._stopping:
            self._cb.on_lost(message)
            self._schedule_reconnect(self._nodes.failed())
        else:
            self._cb.on_stopped()

    def _on_connection_closed(self, _conn: SelectConnection, reason: BaseException) -> None:
        self._channel = None
        self._lost_channel_state()
        if self._stopping:
            self._cb.on_stopped()
            return
        if isinstance(reason, ConnectionClosedByBroker) and reply_code(reason) == ReplyCode.ACCESS_REFUSED:
            self._cb.on_fatal(connection_refused(reply_text(reason)))
            return
        self._cb.on_lost(f"connection to the broker at {self.node} lost: {reason}")
        self._schedule_reconnect(self._nodes.lost())

    def _schedule_reconnect(self, delay: float) -> None:
        log.info("reconnecting to the broker at %s in %.1fs", where(self._nodes.peek()), delay)
        self._ioloop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if not self._stopping:
            self._connect()

    def _on_connection_open(self, connection: SelectConnection) -> None:
        self.server = server_summary(connection.server_properties)
        self.connections += 1
        refusal = self.queues.choose_type(self.server, self.node)
        if refusal:
            self._give_up(refusal)
            return
        connection.channel(on_open_callback=self._on_channel_open)

    def _give_up(self, message: str) -> None:
        """Something only the operator can fix: say what, and close the connection for good."""
        self._cb.on_fatal(message)
        self._stopping = True
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    # --- channel and declarations ----------------------------------------------

    def _on_channel_open(self, channel: Any) -> None:
        self._channel = channel
        self.epoch += 1
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.add_on_cancel_callback(self._on_consumer_cancelled)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._declare())

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._channel = None
        code = reply_code(reason)
        by_broker = isinstance(reason, ChannelClosedByBroker)
        # A publish refused outright closes the channel: 406 for a message larger than the broker takes, 403 for
        # a routing key we may not write (grants changed under us). Those publishes are told why as they fail.
        text = reply_text(reason)
        refused = by_broker and self._step == "consuming" and (
            code == ReplyCode.PRECONDITION_FAILED or (code == ReplyCode.ACCESS_REFUSED and "exchange" in text))
        self.last_refusal = text if refused else None
        self._lost_channel_state()
        self.last_refusal = None
        conn = self._connection
        if self._stopping:
            if conn and conn.is_open:
                conn.close()
            return
        if by_broker and code == ReplyCode.NOT_FOUND and self._step.startswith("exchange"):
            self._passive_exchanges = False  # the shared exchanges are missing: try to create them
            if conn and conn.is_open:
                conn.channel(on_open_callback=self._on_channel_open)
                return
        declaring = self._step.removeprefix("declaring ") if self._step.startswith("declaring ") else ""
        kept = by_broker and code == ReplyCode.PRECONDITION_FAILED and self.queues.keep_classic(declaring, text)
        if kept and conn and conn.is_open:
            conn.channel(on_open_callback=self._on_channel_open)  # declare it again, as the classic queue it is
            return
        fatal = None
        if by_broker and not refused:
            fatal = refusal_advice(code, text, self._step, was_ready=self.was_ready, identity=self._identity,
                                   owner=self._names.owner, creating_exchanges=not self._passive_exchanges)
        if fatal:
            self._give_up(fatal)
            return
        log.warning("channel closed (%s) while %s; reconnecting", reason, self._step)
        if conn and conn.is_open:
            conn.close()

    def describe(self) -> dict:
        """The broker link, for status: the node in use and what its cluster and queues are."""
        return {"node": self.node, "cluster": self.server.get("cluster_name", ""),
                "version": self.server.get("version", ""), "nodes": [where(p) for p in self._nodes.nodes],
                "connections": self.connections, "queue_types": self.queues.types()}

    def _declare(self) -> None:
        ch = self._channel
        steps = [exchange_step(ch, exchange, self._passive_exchanges) for exchange in (TASK_EXCHANGE, RESULT_EXCHANGE)]
        for queue in self.queues.all():
            steps += queue_steps(ch, queue)
        steps += self._command_steps()
        self._run_steps(iter(steps), self._consume)

    def _command_steps(self) -> list[Step]:
        """Consume commands with a prefetch of their own (basic.qos applies to the consumers made after it)."""
        ch = self._channel
        return [("setting the command prefetch",
                 lambda done: ch.basic_qos(prefetch_count=COMMAND_PREFETCH, callback=done)),
                ("consuming commands", self._consume_commands),
                *[alone_step(ch, self._names.commands_queue, self._refuse_second)] * (not self.was_ready)]

    def _refuse_second(self, consumers: int) -> None:
        self._give_up(another_daemon(f"{consumers} consumers of {self._names.commands_queue}"))

    def _consume_commands(self, done: Done | None = None) -> None:
        # Exclusive, as the task consumer: on a classic queue, the broker refuses a second daemon here.
        self._command_consumer = self._channel.basic_consume(self._names.commands_queue, self._on_command_message,
                                                             exclusive=True, callback=done)

    def _run_steps(self, steps: Iterator[Step], finished: Callable[[], None]) -> None:
        step = next(steps, None)
        if step is None:
            finished()
            return
        self._step, action = step
        action(lambda _frame: self._run_steps(steps, finished))

    def _consume(self) -> None:
        self._step = "consuming"
        self.ready = self.was_ready = True
        self._nodes.connected()
        self._start_task_consumer()
        self._cb.on_ready()

    def _start_task_consumer(self) -> None:
        """Consume tasks with the current prefetch, once the interchange has reported its capacity.

        RabbitMQ applies basic.qos to consumers created after it, not to existing
        ones, so a new prefetch takes effect through a new consumer.
        """
        if self._prefetch is None or self._tasks_paused or not self.ready:
            return
        ch = self._channel
        if self._task_consumer:
            # Deliveries still in flight to the old consumer are rejected by pika and
            # come back redelivered; those already received stay ours until acked.
            ch.basic_cancel(self._task_consumer)
            self._task_consumer = None

        def consume(_frame: Any) -> None:
            if self._channel is ch and ch.is_open and not self._tasks_paused and self._task_consumer is None:
                # Exclusive: a second daemon of this endpoint (another login node sharing $HOME) is refused.
                self._task_consumer = ch.basic_consume(self._names.tasks_queue, self._on_task_message, exclusive=True)
                log.info("consuming %s with prefetch %d", self._names.tasks_queue, self._prefetch)

        ch.basic_qos(prefetch_count=self._prefetch, callback=consume)

    def _on_consumer_cancelled(self, frame: Any) -> None:
        """The broker cancelled a consumer: its queue was deleted, or moved to another node.

        Declare the queue again (an empty one, if it was deleted) and go on
        consuming; the channel and everything unacked on it stay as they are.
        """
        if self._stopping or self._channel is None or not self._channel.is_open:
            return
        tag = frame.method.consumer_tag
        if tag == self._task_consumer:
            self._task_consumer = None
            queue = self.queues["tasks"]
            steps, then = queue_steps(self._channel, queue), self._start_task_consumer
        elif tag == self._command_consumer:
            self._command_consumer = None
            queue = self.queues["commands"]
            steps, then = queue_steps(self._channel, queue) + self._command_steps(), None
        else:
            return
        log.warning("the broker cancelled our consumer of %s (deleted or moved); declaring it again", queue.name)

        def resume() -> None:
            self._step = "consuming"
            if then is not None:
                then()

        self._run_steps(iter(steps), resume)

    # --- consuming ---------------------------------------------------------------

    def _on_task_message(self, _ch: Any, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.counts["deliveries"] += 1
        self._cb.on_task(Delivery(method.delivery_tag, self.epoch, method.redelivered, properties, body))

    def _on_command_message(self, _ch: Any, method: Any, properties: pika.BasicProperties,
                            body: bytes) -> None:
        self._cb.on_command(Delivery(method.delivery_tag, self.epoch, method.redelivered, properties, body))

    def _usable(self, delivery: Delivery) -> bool:
        return delivery.epoch == self.epoch and self._channel is not None and self._channel.is_open

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge; False if the delivery's channel is gone (the broker will redeliver it)."""
        if not self._usable(delivery):
            return False
        self._channel.basic_ack(delivery.tag)
        self.counts["acks"] += 1
        return True

    def set_prefetch(self, count: int) -> None:
        """How many tasks the broker may hand us unacked: follows worker capacity."""
        count = min(max(1, count), MAX_PREFETCH)
        if count == self._prefetch:
            return
        self._prefetch = count
        if self._channel is not None and self._channel.is_open:
            self._start_task_consumer()

    @property
    def prefetch(self) -> int | None:
        return self._prefetch

    def pause_tasks(self) -> None:
        """Stop receiving new tasks (drain); unacked ones stay ours until acked or requeued."""
        self._tasks_paused = True
        if self._task_consumer and self._channel is not None and self._channel.is_open:
            self._channel.basic_cancel(self._task_consumer)
        self._task_consumer = None

    # --- publishing --------------------------------------------------------------

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties,
                on_confirm: Callable[[bool], None] | None = None, mandatory: bool = True) -> bool:
        """Publish; ``on_confirm(True)`` once the broker has it, ``(False)`` if it refused or we disconnected.

        Every message carries our identity as ``user_id``, which RabbitMQ checks
        against the connection's user, so that receivers know it came from us.
        Returns False, without publishing, while there is no usable channel.
        """
        if not self.ready or self._channel is None or not self._channel.is_open:
            return False
        properties.user_id = self._identity
        self._channel.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
        self.counts["published"] += 1
        self._confirms.published(on_confirm or _unheeded, f"{exchange} {routing_key}")
        return True

    def check_confirms(self) -> None:
        """Publishes unconfirmed too long, or refused again and again: a new channel, which sends them again."""
        stuck = self._confirms.stuck()
        if stuck and self._channel is not None and self._channel.is_open:
            log.warning("the broker at %s %s; opening a new channel to send them again", self.node, stuck)
            self._channel.close()

    def _on_confirm(self, frame: Any) -> None:
        ok, callbacks = self._confirms.confirmed(frame)
        for callback in callbacks:
            callback(ok)

    def _on_return(self, _channel: Any, method: Any, properties: pika.BasicProperties, _body: bytes) -> None:
        self._cb.on_returned(properties.message_id or "", method.reply_text)

    def _lost_channel_state(self) -> None:
        self.ready = False
        self._task_consumer = None
        self._command_consumer = None
        for callback in self._confirms.reset():
            callback(False)

    # --- stopping ----------------------------------------------------------------

    def stop(self) -> None:
        """Close the channel then the connection; ``on_stopped`` fires when done."""
        self._stopping = True
        conn = self._connection
        if self._channel is not None and self._channel.is_open:
            self._channel.close()
        elif conn is not None and not (conn.is_closed or conn.is_closing):
            conn.close()  # also aborts a connection still opening; its callback reports the stop
        elif conn is None or conn.is_closed:
            self._cb.on_stopped()

"""The endpoint's AMQP agent: all of the daemon's pika code, on pika's own ioloop.

Modelled on pika's asynchronous consumer/publisher examples: explicit
connection and channel callbacks, a declaration chain run on every
(re)connection, reconnect with backoff, publisher confirms tracked by
delivery tag, and a clean stop that closes the channel, then the connection.

The daemon sees a small interface: callbacks ``on_ready``, ``on_lost``,
``on_fatal``, ``on_task``, ``on_command``, ``on_returned``; and methods
``publish``, ``ack``, ``reject``, ``set_prefetch``, ``pause_tasks``, ``stop``.
"""

import itertools
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pika
from pika.adapters.select_connection import SelectConnection
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed
from pika.exceptions import (
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)

from ..protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, EndpointNames

log = logging.getLogger("compute_endpoint.endpoint.amqp")

RECONNECT_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)
COMMAND_TTL_MS = 60_000
COMMAND_PREFETCH = 10
ACCESS_REFUSED = 403
NOT_FOUND = 404


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


def connection_parameters(url: str, client_id: str, secret: str, *, tls_ca: str | None = None,
                          heartbeat: int = 60, connect_timeout: float = 10.0,
                          name: str = "compute-endpoint") -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.credentials = pika.PlainCredentials(client_id, secret, erase_on_connect=False)
    params.heartbeat = heartbeat
    params.socket_timeout = connect_timeout
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    if url.startswith("amqps://"):
        context = ssl.create_default_context(cafile=tls_ca)
        params.ssl_options = pika.SSLOptions(context, params.host)
    return params


def describe_connection_error(error: BaseException, params: pika.ConnectionParameters, who: str) -> tuple[bool, str]:
    """(fatal, message) for a failed connection attempt."""
    if isinstance(error, AMQPConnectionWorkflowFailed) and error.exceptions:
        error = error.exceptions[-1]
    where = f"{params.host}:{params.port}"
    if isinstance(error, ProbableAuthenticationError) or "ACCESS_REFUSED" in str(error) and "Login" in str(error):
        return True, (f"the broker at {where} refused the credentials of identity {who!r} (ACCESS_REFUSED); "
                      "check COMPUTE_CLIENT_ID/COMPUTE_CLIENT_SECRET or run `compute-endpoint login`")
    if isinstance(error, ProbableAccessDeniedError):
        return True, (f"identity {who!r} may not use virtual host {params.virtual_host!r} on {where}; "
                      "ask the broker administrator for permissions")
    text = str(error) or type(error).__name__
    return False, f"cannot reach the broker at {where}: {text}"


class AmqpAgent:
    def __init__(self, ioloop, params: pika.ConnectionParameters, names: EndpointNames,
                 callbacks: AgentCallbacks, identity: str):
        self._ioloop = ioloop
        self._params = params
        self._names = names
        self._cb = callbacks
        self._identity = identity
        self._connection: SelectConnection | None = None
        self._channel = None
        self.epoch = 0
        self.ready = False
        self._stopping = False
        self._attempt = 0
        self._prefetch: int | None = None  # None until the interchange reports its capacity
        self._passive_exchanges = True
        self._publish_seq = 0
        self._pending: dict[int, Callable[[bool], None]] = {}
        self._task_consumer: str | None = None
        self._tasks_paused = False
        self.counts = {"deliveries": 0, "published": 0, "acks": 0}  # AMQP messages, for status
        self._step = "connecting"

    # --- connection ------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._connect()

    def _connect(self) -> None:
        self._step = "connecting"
        self._connection = SelectConnection(
            self._params, on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed, custom_ioloop=self._ioloop,
        )

    def _on_connection_open_error(self, _conn, error: BaseException) -> None:
        fatal, message = describe_connection_error(error, self._params, self._identity)
        if fatal:
            self._cb.on_fatal(message)
        elif not self._stopping:
            self._cb.on_lost(message)
            self._schedule_reconnect()
        else:
            self._cb.on_stopped()

    def _on_connection_closed(self, _conn, reason: BaseException) -> None:
        self._channel = None
        self._lost_channel_state()
        if self._stopping:
            self._cb.on_stopped()
            return
        if isinstance(reason, ConnectionClosedByBroker) and reason.reply_code == ACCESS_REFUSED:
            self._cb.on_fatal(f"the broker closed the connection: {reason.reply_text}")
            return
        self._cb.on_lost(f"connection to the broker lost: {reason}")
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        delay = RECONNECT_DELAYS[min(self._attempt, len(RECONNECT_DELAYS) - 1)]
        self._attempt += 1
        log.info("reconnecting to the broker in %ss (attempt %d)", delay, self._attempt)
        self._ioloop.call_later(delay, self._reconnect)

    def _reconnect(self) -> None:
        if not self._stopping:
            self._connect()

    def _on_connection_open(self, connection: SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    # --- channel and declarations ----------------------------------------------

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        self.epoch += 1
        self._publish_seq = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: self._declare())

    def _on_channel_closed(self, _channel, reason: BaseException) -> None:
        self._channel = None
        self._lost_channel_state()
        conn = self._connection
        if self._stopping:
            if conn and conn.is_open:
                conn.close()
            return
        code = getattr(reason, "reply_code", 0)
        if isinstance(reason, ChannelClosedByBroker) and code == NOT_FOUND and self._step.startswith("exchange"):
            self._passive_exchanges = False  # the shared exchanges are missing: try to create them
            if conn and conn.is_open:
                conn.channel(on_open_callback=self._on_channel_open)
                return
        if isinstance(reason, ChannelClosedByBroker) and code == ACCESS_REFUSED:
            self._cb.on_fatal(self._refusal_message(reason.reply_text))
            self._stopping = True
            if conn and conn.is_open:
                conn.close()
            return
        log.warning("channel closed (%s) while %s; reconnecting", reason, self._step)
        if conn and conn.is_open:
            conn.close()

    def _refusal_message(self, reply_text: str) -> str:
        if self._step.startswith("exchange") and not self._passive_exchanges:
            return (f"the broker has no exchange {TASK_EXCHANGE!r}/{RESULT_EXCHANGE!r} and identity "
                    f"{self._identity!r} may not create them ({reply_text}); an administrator must set up the "
                    "broker (see README: Broker setup)")
        if self._identity != self._names.owner:
            return (f"the broker refused identity {self._identity!r} access to this endpoint, which belongs to "
                    f"{self._names.owner!r} ({reply_text}); only the owner can start an endpoint: use the "
                    "owner's credentials")
        return (f"the broker refused identity {self._identity!r} while {self._step} ({reply_text}); "
                "check its permissions (see README: Broker setup)")

    def _declare(self) -> None:
        ch, n = self._channel, self._names
        passive = self._passive_exchanges
        steps = [
            ("exchange " + TASK_EXCHANGE,
             lambda done: ch.exchange_declare(TASK_EXCHANGE, "topic", passive=passive, durable=True, callback=done)),
            ("exchange " + RESULT_EXCHANGE,
             lambda done: ch.exchange_declare(RESULT_EXCHANGE, "topic", passive=passive, durable=True,
                                              callback=done)),
            ("declaring " + n.tasks_queue, lambda done: ch.queue_declare(n.tasks_queue, durable=True, callback=done)),
            ("declaring " + n.commands_queue,
             lambda done: ch.queue_declare(n.commands_queue, durable=True,
                                           arguments={"x-message-ttl": COMMAND_TTL_MS}, callback=done)),
            ("declaring " + n.status_queue,
             lambda done: ch.queue_declare(n.status_queue, durable=True, arguments={"x-max-length": 1},
                                           callback=done)),
            ("declaring " + n.dead_queue, lambda done: ch.queue_declare(n.dead_queue, durable=True, callback=done)),
        ]
        for queue, key in ((n.tasks_queue, n.tasks_key), (n.commands_queue, n.commands_key),
                           (n.status_queue, n.status_key), (n.dead_queue, n.dead_key)):
            steps.append((f"binding {queue}",
                          lambda done, q=queue, k=key: ch.queue_bind(q, TASK_EXCHANGE, routing_key=k, callback=done)))
        steps.append(("setting the command prefetch",
                      lambda done: ch.basic_qos(prefetch_count=COMMAND_PREFETCH, callback=done)))
        steps.append(("consuming commands",
                      lambda done: ch.basic_consume(self._names.commands_queue, self._on_command_message,
                                                    callback=done)))
        self._run_steps(iter(steps), self._consume)

    def _run_steps(self, steps, finished: Callable[[], None]) -> None:
        step = next(steps, None)
        if step is None:
            finished()
            return
        self._step, action = step
        action(lambda _frame: self._run_steps(steps, finished))

    def _consume(self) -> None:
        self._step = "consuming"
        self.ready = True
        self._attempt = 0
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

        def consume(_frame):
            if self._channel is ch and ch.is_open and not self._tasks_paused and self._task_consumer is None:
                self._task_consumer = ch.basic_consume(self._names.tasks_queue, self._on_task_message)
                log.info("consuming %s with prefetch %d", self._names.tasks_queue, self._prefetch)

        ch.basic_qos(prefetch_count=self._prefetch, callback=consume)

    # --- consuming ---------------------------------------------------------------

    def _on_task_message(self, _ch, method, properties, body) -> None:
        self.counts["deliveries"] += 1
        self._cb.on_task(Delivery(method.delivery_tag, self.epoch, method.redelivered, properties, body))

    def _on_command_message(self, _ch, method, properties, body) -> None:
        self._cb.on_command(Delivery(method.delivery_tag, self.epoch, method.redelivered, properties, body))

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge; False if the delivery's channel is gone (the broker will redeliver it)."""
        if delivery.epoch != self.epoch or self._channel is None or not self._channel.is_open:
            return False
        self._channel.basic_ack(delivery.tag)
        self.counts["acks"] += 1
        return True

    def reject(self, delivery: Delivery, requeue: bool) -> None:
        if delivery.epoch == self.epoch and self._channel is not None and self._channel.is_open:
            self._channel.basic_reject(delivery.tag, requeue=requeue)

    def set_prefetch(self, count: int) -> None:
        """How many tasks the broker may hand us unacked: follows worker capacity."""
        count = max(1, count)
        if count == self._prefetch:
            return
        self._prefetch = count
        if self._channel is not None and self._channel.is_open:
            self._start_task_consumer()

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

        Returns False, without publishing, while there is no usable channel.
        """
        if not self.ready or self._channel is None or not self._channel.is_open:
            return False
        self._channel.basic_publish(exchange, routing_key, body, properties, mandatory=mandatory)
        self.counts["published"] += 1
        self._publish_seq += 1
        if on_confirm is not None:
            self._pending[self._publish_seq] = on_confirm
        return True

    def _on_confirm(self, frame) -> None:
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            done = list(itertools.takewhile(lambda seq: seq <= method.delivery_tag, self._pending))
        else:
            done = [method.delivery_tag] if method.delivery_tag in self._pending else []
        for seq in done:
            self._pending.pop(seq)(ok)

    def _on_return(self, _channel, method, properties, _body) -> None:
        self._cb.on_returned(properties.message_id or "", method.reply_text)

    def _lost_channel_state(self) -> None:
        self.ready = False
        self._task_consumer = None
        pending, self._pending = self._pending, {}
        for callback in pending.values():
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

"""The requests the endpoint's AMQP agent makes on each (re)connection, as steps run one after another.

A step is (what the agent is doing, for error messages; the request), and
the request calls ``done`` with the broker's reply frame.
"""

from collections.abc import Callable
from typing import Any

from ..protocol.broker_names import TASK_EXCHANGE
from .queues import Queue

Done = Callable[[Any], None]  # called with the broker's reply frame
Step = tuple[str, Callable[[Done], None]]


def exchange_step(channel: Any, exchange: str, passive: bool) -> Step:
    return (f"exchange {exchange}",
            lambda done: channel.exchange_declare(exchange, "topic", passive=passive, durable=True, callback=done))


def queue_steps(channel: Any, queue: Queue) -> list[Step]:
    return [(f"declaring {queue.name}",
             lambda done: channel.queue_declare(queue.name, durable=True, arguments=queue.arguments, callback=done)),
            (f"binding {queue.name}",
             lambda done: channel.queue_bind(queue.name, TASK_EXCHANGE, routing_key=queue.key, callback=done))]


def alone_step(channel: Any, queue: str, refuse: Callable[[int], None]) -> Step:
    """A quorum queue takes no exclusive consumer, so a second daemon of this endpoint (another login node
    sharing $HOME) shows as a second consumer of its commands: ``refuse(count)`` then, before it says it is
    ready."""
    def request(done: Done) -> None:
        def counted(frame: Any) -> None:
            count = frame.method.consumer_count
            if count > 1:
                refuse(count)
            else:
                done(frame)

        channel.queue_declare(queue, passive=True, callback=counted)

    return ("looking for another daemon", request)

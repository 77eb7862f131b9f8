"""Moving an endpoint's queues to the type and arguments its config now asks for (``migrate-queues``).

RabbitMQ cannot change a queue's type or arguments in place: a classic queue
becomes a quorum queue only by making a new queue and moving the messages.
The name must stay (the SDK and the grants know the endpoint by it), so each
queue is moved twice: into ``NAME.moving``, which takes the queue's routing
key while the old queue is deleted and declared anew, then back.

Each message is published to its new queue and confirmed before it is
acknowledged in the old one: an interruption leaves at most a duplicate
(which the endpoint and the SDK drop by task id), never a loss, and running
the command again finishes the job. Run it with the endpoint stopped, as the
endpoint's owner.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import pika
from pika.exceptions import ChannelClosedByBroker

from ..broker import ReplyCode
from ..protocol.broker_names import TASK_EXCHANGE, EndpointNames
from .queues import QUEUE_ROLES, EndpointQueues, Queue

MOVING_SUFFIX = ".moving"
# A message moved by the owner keeps its sender here: RabbitMQ lets a connection publish only as its own user.
MOVED_FOR_HEADER = "x-compute-sender"


class QueueMigrationError(Exception):
    pass


class Moved(NamedTuple):
    role: str  # tasks, commands, status or dead
    queue: str
    type: str  # what it is now
    messages: int | None  # moved from the old queue; None when it was already as the config says


class QueueMigration:
    def __init__(self, connection: pika.BlockingConnection, names: EndpointNames, queues: EndpointQueues,
                 progress: Callable[[str], None] = lambda _text: None):
        self.connection = connection
        self.names = names
        self.queues = queues
        self.progress = progress

    def run(self) -> list[Moved]:
        return [self.migrate(role, self.queues[role]) for role in QUEUE_ROLES]

    def migrate(self, role: str, queue: Queue) -> Moved:
        moving = queue.name + MOVING_SUFFIX
        already = self._declares(queue)
        kind = self.queues.type_of(queue.name)
        if already and not self._exists(moving):
            return Moved(role, queue.name, kind, None)
        channel = self.connection.channel()
        channel.queue_declare(moving, durable=True, arguments=queue.arguments)
        channel.queue_bind(moving, TASK_EXCHANGE, routing_key=queue.key)
        moved = 0
        if not already:
            # From here new messages go to the moving queue only; the old one just empties.
            channel.queue_unbind(queue.name, TASK_EXCHANGE, routing_key=queue.key)
            self.progress(f"moving the messages of {queue.name} into {moving}")
            moved = self._move(queue.name, queue.key)
            self._delete_emptied(channel, queue.name)
            channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
        channel.queue_bind(queue.name, TASK_EXCHANGE, routing_key=queue.key)
        channel.queue_unbind(moving, TASK_EXCHANGE, routing_key=queue.key)
        self.progress(f"moving them back into {queue.name}, now a {kind} queue")
        self._move(moving, queue.key)
        self._delete_emptied(channel, moving)
        channel.close()
        return Moved(role, queue.name, kind, moved)

    @staticmethod
    def _delete_emptied(channel: Any, name: str) -> None:
        """Delete a queue just moved out of (quorum queues cannot be deleted "if empty": check, then delete;
        it is bound to nothing by now, so nothing can arrive in between)."""
        left = channel.queue_declare(name, passive=True).method.message_count
        if left:
            raise QueueMigrationError(f"{left} messages arrived in {name} while it was being moved out of")
        channel.queue_delete(name)

    def _declares(self, queue: Queue) -> bool:
        """True if the queue is (now) declared with the arguments wanted; False if it exists with others."""
        channel = self.connection.channel()
        try:
            channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != ReplyCode.PRECONDITION_FAILED:
                raise
            return False
        channel.close()
        return True

    def _exists(self, name: str) -> bool:
        channel = self.connection.channel()
        try:
            channel.queue_declare(name, passive=True)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != ReplyCode.NOT_FOUND:
                raise
            return False
        channel.close()
        return True

    def _move(self, source: str, key: str) -> int:
        """Every message of ``source`` published again under ``key``, each confirmed before it is acked."""
        channel = self.connection.channel()
        channel.confirm_delivery()
        count = 0
        while True:
            method, properties, body = channel.basic_get(source)
            if method is None:
                break
            channel.basic_publish(TASK_EXCHANGE, key, body, self._as_owner(properties), mandatory=True)
            channel.basic_ack(method.delivery_tag)
            count += 1
            if count % 1000 == 0:
                self.progress(f"{count:,} messages moved from {source}")
        channel.close()
        return count

    def _as_owner(self, properties: pika.BasicProperties) -> pika.BasicProperties:
        sender = properties.user_id
        if sender and sender != self.names.owner:
            properties.headers = {**(properties.headers or {}), MOVED_FOR_HEADER: sender}
        properties.user_id = self.names.owner
        return properties

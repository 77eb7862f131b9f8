"""The endpoint's dead-letter queue: messages that cannot run, set aside with why and from whom."""

import logging
from collections.abc import Callable

import pika

from ..protocol.broker_names import TASK_EXCHANGE, EndpointNames
from .amqp import AmqpAgent
from .inflight import DeliveryGroup

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, agent: AmqpAgent, names: EndpointNames):
        self.agent = agent
        self.names = names
        self.count = 0
        self.on_set_aside: Callable[[str], None] = lambda reason: None  # counts for metrics, by reason

    def set_aside(self, body: bytes, reason: str, detail: str, group: DeliveryGroup | None,
                  sender: str | None, then: Callable[[], None] | None = None) -> None:
        """Move a message (or bundle item) aside, with ``x-reject-reason`` and ``-detail`` and its sender.

        It counts as done for its delivery once the dead-letter queue has it (and
        ``then`` runs); if it cannot be published now, the delivery stays unacked
        and comes back later.
        """
        log.error("message set aside in %s: %s", self.names.dead_queue, detail)
        self.count += 1
        self.on_set_aside(reason)
        props = pika.BasicProperties(delivery_mode=2, headers={"x-reject-reason": reason,
                                                                "x-reject-detail": detail[:1000],
                                                                "x-original-sender": sender or ""})

        def confirmed(ok: bool) -> None:
            if ok and group is not None and group.done_one():
                self.agent.ack(group.delivery)
            if ok and then is not None:
                then()

        self.agent.publish(TASK_EXCHANGE, self.names.dead_key, body, props, on_confirm=confirmed)

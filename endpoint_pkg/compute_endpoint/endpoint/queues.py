"""The endpoint's queues on the broker: their names, routing keys and how each is declared.

Where the broker has them (RabbitMQ 3.10 and later), the queues are quorum
queues: Raft replicates each message to a majority of the cluster's nodes
before the publish is confirmed, so losing a node loses nothing and the
queue goes on from the others. The task queue also has a delivery limit: a
task delivered that many times (each time its consumer went away without
acknowledging it: a crash, a lost connection, a stop) is dead-lettered into
the endpoint's dead-letter queue instead of coming back for ever.
"""

import logging
from dataclasses import dataclass, field
from typing import NamedTuple

from ..broker import queue_arguments, supports_quorum
from ..errors import ExitCode, Verdict
from ..protocol.broker_names import TASK_EXCHANGE, EndpointNames

log = logging.getLogger(__name__)

COMMAND_TTL_MS = 60_000
QUEUE_ROLES = ("tasks", "commands", "status", "dead")


class Queue(NamedTuple):
    name: str
    key: str  # its binding on the task exchange
    arguments: dict  # as declared on the broker in use


@dataclass(frozen=True)
class QueueSettings:
    """The config's broker.queue_type and broker.delivery_limit."""

    queue_type: str = "auto"  # quorum, classic, or auto: quorum where the broker has it, existing queues kept
    delivery_limit: int = 10


@dataclass
class EndpointQueues:
    names: EndpointNames
    settings: QueueSettings = field(default_factory=QueueSettings)
    quorum: bool = False  # decided on each connection, from what the broker says it is
    classic_kept: set[str] = field(default_factory=set)  # existing classic queues, kept so under queue_type auto

    def choose_type(self, server: dict[str, str], node: str) -> str | None:
        """Quorum or classic, for the broker node just connected to (``server_summary``); a message for the
        operator when the config asks for quorum queues the broker does not have."""
        has_quorum = supports_quorum(server.get("version", ""))
        if self.settings.queue_type == "quorum" and not has_quorum:
            version = server.get("version") or "?"
            return Verdict(f"broker.queue_type is quorum but the broker at {node} (RabbitMQ {version}) has no "
                           "quorum queues with what the endpoint uses (RabbitMQ 3.10 or later): upgrade it, or set "
                           "broker.queue_type: auto", ExitCode.BAD_CONFIG)
        self.quorum = self.settings.queue_type != "classic" and has_quorum
        return None

    def type_of(self, name: str) -> str:
        return "quorum" if self.quorum and name not in self.classic_kept else "classic"

    def types(self) -> dict[str, str]:
        """What each queue is declared as, by role."""
        return {role: self.type_of(self[role].name) for role in QUEUE_ROLES}

    def __getitem__(self, role: str) -> Queue:
        n = self.names
        name, key, arguments = {
            "tasks": (n.tasks_queue, n.tasks_key, {}),
            "commands": (n.commands_queue, n.commands_key, {"x-message-ttl": COMMAND_TTL_MS}),
            "status": (n.status_queue, n.status_key, {"x-max-length": 1}),
            "dead": (n.dead_queue, n.dead_key, {}),
        }[role]
        return Queue(name, key, self._declared(role, name, arguments))

    def all(self) -> list[Queue]:
        return [self[role] for role in QUEUE_ROLES]

    def _declared(self, role: str, name: str, arguments: dict) -> dict:
        if self.type_of(name) != "quorum":
            return arguments
        declared = queue_arguments(arguments, quorum=True)
        if role in ("tasks", "commands"):
            declared["x-delivery-limit"] = self.settings.delivery_limit
        if role == "tasks":
            declared.update({"x-dead-letter-exchange": TASK_EXCHANGE, "x-dead-letter-routing-key": self.names.dead_key})
        return declared

    def keep_classic(self, name: str, refusal: str) -> bool:
        """The broker refused to declare ``name`` as a quorum queue because it exists with other arguments
        (which one the broker names first varies): under queue_type auto it is declared again as a classic queue,
        as it was before quorum queues (nothing in it is lost); True if so. A second refusal is for the operator."""
        if ("inequivalent arg" not in refusal or self.settings.queue_type != "auto" or not self.quorum
                or name in self.classic_kept or name not in {queue.name for queue in self.all()}):
            return False
        self.classic_kept.add(name)
        log.warning("queue %s exists with other arguments (%s): declaring it as the classic queue it was before; "
                    "it is not replicated across broker nodes: `compute-endpoint migrate-queues` (with the endpoint "
                    "stopped) makes it a quorum queue", name, refusal)
        return True

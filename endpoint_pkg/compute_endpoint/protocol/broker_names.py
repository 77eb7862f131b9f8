"""Names of the exchanges, queues and routing keys on the broker.

Two shared topic exchanges carry everything. Routing keys start with the
owning identity, and queue names embed it, so RabbitMQ's permissions do the
access control:

* topic permissions on ``ce.tasks`` and ``ce.results`` with ``{username}``
  expansion (``^{username}\\.``) stop one identity binding to, or publishing
  tasks for, another identity's endpoints;
* per-user resource permissions (``^ce\\.<user>\\.``) stop it consuming another
  identity's queues.

See ``broker_permissions()`` for the exact grants an identity needs.
"""

import re
from dataclasses import dataclass

TASK_EXCHANGE = "ce.tasks"
RESULT_EXCHANGE = "ce.results"

IDENTITY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REPLY_KEY = re.compile(r"^([A-Za-z0-9_-]{1,64})\.[A-Za-z0-9_-]{1,64}$")


def check_identity(identity: str) -> str:
    """Refuse identities that cannot be embedded safely in names and regexes."""
    if not IDENTITY_PATTERN.match(identity or ""):
        raise ValueError(
            f"broker identity {identity!r} is not usable: use 1-64 letters, digits, '_' or '-' "
            "(it becomes part of queue names and permission patterns)"
        )
    return identity


@dataclass(frozen=True)
class EndpointNames:
    """Queues and routing keys of one endpoint, scoped by its owner."""

    owner: str
    endpoint_id: str

    def _key(self, suffix: str) -> str:
        return f"{self.owner}.{self.endpoint_id}.{suffix}"

    def _queue(self, suffix: str) -> str:
        return f"ce.{self._key(suffix)}"

    @property
    def tasks_key(self) -> str:
        return self._key("tasks")

    @property
    def tasks_queue(self) -> str:
        return self._queue("tasks")

    @property
    def commands_key(self) -> str:
        return self._key("commands")

    @property
    def commands_queue(self) -> str:
        return self._queue("commands")

    @property
    def status_key(self) -> str:
        return self._key("status")

    @property
    def status_queue(self) -> str:
        return self._queue("status")

    @property
    def dead_key(self) -> str:
        return self._key("dead")

    @property
    def dead_queue(self) -> str:
        return self._queue("dead")

    def as_dict(self) -> dict:
        return {
            "tasks": self.tasks_queue,
            "commands": self.commands_queue,
            "status": self.status_queue,
            "dead_letter": self.dead_queue,
        }


@dataclass(frozen=True)
class ReplyAddress:
    """Where results for one SDK session (or one CLI command) are delivered."""

    identity: str
    session: str

    @property
    def key(self) -> str:
        return f"{self.identity}.{self.session}"

    @property
    def queue(self) -> str:
        return f"ce.{self.identity}.results.{self.session}"


def reply_key_is_valid(key: str) -> bool:
    return bool(_REPLY_KEY.match(key or ""))


def broker_permissions(identity: str) -> dict:
    """The RabbitMQ grants an identity needs to own endpoints and submit to them."""
    mine = rf"^ce\.{re.escape(identity)}\."
    shared = r"^ce\.(tasks|results)$"
    return {
        "configure": mine,
        "write": f"{mine}|{shared}",
        "read": f"{mine}|{shared}",
        "topic": {
            TASK_EXCHANGE: {"write": r"^{username}\.", "read": r"^{username}\."},
            RESULT_EXCHANGE: {"write": r".*", "read": r"^{username}\."},
        },
    }

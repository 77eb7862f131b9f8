"""Names of the exchanges, queues and routing keys on the broker.

Two shared topic exchanges carry everything. Routing keys start with the
owning identity, and queue names embed it, so RabbitMQ's permissions do the
access control:

* topic permissions on ``ce.tasks`` and ``ce.results`` with ``{username}``
  expansion stop one identity binding to, or publishing to, another
  identity's keys, except the task keys of owners it was granted;
* per-user resource permissions (``^ce\\.<user>\\.``) stop it consuming another
  identity's queues.

See ``broker_permissions()`` for the exact grants an identity needs.
"""

import re
from collections.abc import Iterable
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


def reply_key_owner(key: str) -> str | None:
    """The identity whose result key ``key`` is, or None when it is not a result key."""
    match = _REPLY_KEY.match(key or "")
    return match.group(1) if match else None


def broker_permissions(identity: str, submit_to: Iterable[str] = (), submitters: Iterable[str] = ()) -> dict:
    """The RabbitMQ grants an identity needs to own endpoints, and to submit to the owners in ``submit_to``.

    On ``ce.tasks`` it may write its own endpoints' keys, and only the task
    keys of the owners it submits to (never their commands or status). On
    ``ce.results`` it may write its own reply keys and those of the identities
    that submit to it (``submitters``), where its endpoints send their results.
    Routes around these grants (dead-letter and alternate exchanges) are closed
    by the endpoint and the SDK, which check each message's ``user_id``.
    """
    mine = rf"^ce\.{check_identity(identity)}\."
    shared = r"^ce\.(tasks|results)$"
    own_keys = r"{username}\.[^.]+\.(tasks|commands|status|dead)"
    owners = "|".join(check_identity(owner) for owner in submit_to)
    task_write = rf"^({own_keys}|({owners})\.[^.]+\.tasks)$" if owners else f"^{own_keys}$"
    repliers = "|".join(["{username}", *(check_identity(name) for name in submitters)])
    return {
        "configure": mine,
        "write": f"{mine}|{shared}",
        "read": f"{mine}|{shared}",
        "topic": {
            TASK_EXCHANGE: {"write": task_write, "read": r"^{username}\."},
            RESULT_EXCHANGE: {"write": rf"^({repliers})\.", "read": r"^{username}\."},
        },
    }

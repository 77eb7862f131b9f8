"""The messages between the endpoint daemon, its interchange and its managers (over ZeroMQ).

The same ``Message`` machinery as the broker's messages (messages.py); these never leave the endpoint's side.
"""

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .messages import Message, in_payload
from .vocabulary import ControlAction


@dataclass(slots=True)
class ManagerRegistration(Message):
    """A manager announcing itself, its capacity and the tasks it already holds.

    ``incarnation`` is new for every manager process: the same value tells the
    interchange that a registration comes from a process it already knows
    (reconnected, or asked to register again), not from a restarted one.
    """

    KIND: ClassVar[int] = 10
    manager_id: str
    hostname: str
    pid: int
    workers: int
    incarnation: str = ""
    prefetch: int = 0
    container_types: list[str] = field(default_factory=lambda: ["RAW"])
    warm_containers: list[str] = field(default_factory=list)  # the type of each idle worker
    busy_containers: list[str] = field(default_factory=list)  # the type of each worker running a task
    cold_starts: int = 0  # container workers it started, since it started
    warm_hits: int = 0  # tasks of a container type that found an idle worker of that type
    known_tasks: list[str] = in_payload()
    last_batch: int = 0
    version: str = ""
    plain_arguments: bool = False  # its workers load task arguments as plain data only (allowed_functions)
    block_id: str = ""  # the endpoint's block (batch job) it runs in; empty when not started by a provider


@dataclass(slots=True)
class Heartbeat(Message):
    """Liveness, in either direction.

    From a manager: ``known_tasks`` lists every task it holds (queued, running,
    or finished with the result not yet acknowledged) and ``last_batch`` the
    newest task batch it received, so the interchange can find batches lost
    on a broken connection. From the interchange: ``incarnation`` changes when
    it restarts, telling peers to register again and resend.
    """

    KIND: ClassVar[int] = 11
    sender: str
    incarnation: str = ""
    known_tasks: list[str] = in_payload()
    last_batch: int = 0
    idle_workers: int = 0
    warm_containers: list[str] = field(default_factory=list)  # the type of each idle worker
    busy_containers: list[str] = field(default_factory=list)  # the type of each worker running a task
    cold_starts: int = 0  # container workers it started, since it started
    warm_hits: int = 0  # tasks of a container type that found an idle worker of that type


@dataclass(slots=True)
class TaskBatch(Message):
    """Header frame of a multipart message whose next frames are packed Tasks."""

    KIND: ClassVar[int] = 12
    seq: int = 0


@dataclass(slots=True)
class ResultBatch(Message):
    """Header frame of a multipart message whose next frames are packed Results."""

    KIND: ClassVar[int] = 13
    sender: str = ""


@dataclass(slots=True)
class ResultAck(Message):
    """The interchange has taken these results; the manager may forget them."""

    KIND: ClassVar[int] = 14
    task_ids: list[str] = in_payload()


@dataclass(slots=True)
class Control(Message):
    """An instruction or notice between the endpoint, the interchange and managers (see ControlAction)."""

    KIND: ClassVar[int] = 15
    action: ControlAction
    detail: str = ""  # why, for the log of whoever receives it (DRAIN, FAIL_QUEUED)
    manager_ids: list[str] = in_payload()  # whom it concerns (DRAIN_MANAGERS)
    container_types: list[str] = in_payload()  # whose waiting tasks (FAIL_QUEUED; empty: every task's)


@dataclass(slots=True)
class InterchangeStatus(Message):
    """The interchange's view, sent to the endpoint periodically and on change.

    Payload: the managers' summaries as JSON, which grows with their number and so
    does not belong in the (size-limited) header.
    """

    KIND: ClassVar[int] = 16
    incarnation: str
    pid: int
    capacity: int
    free_slots: int
    queued: int
    running: int
    refused_messages: int = 0  # dropped: from managers that may not send them (see interchange/manager_auth.py)
    refused_handshakes: int = 0  # managers on other hosts whose keys are not authorized
    placements: dict = field(default_factory=dict)  # soft routing: tasks placed warm, cold and by replacing
    container_starts: dict = field(default_factory=dict)  # the managers' cold starts and warm hits, summed
    retried: int = 0  # tasks queued again after their worker or manager died (since this interchange started)
    payload: bytes = b""

    @classmethod
    def of(cls, managers: list[dict], **fields: Any) -> "InterchangeStatus":
        return cls(payload=json.dumps(managers).encode(), **fields)

    @property
    def managers(self) -> list[dict]:
        return json.loads(self.payload) if self.payload else []

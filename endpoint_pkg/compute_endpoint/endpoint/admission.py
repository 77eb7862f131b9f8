"""Which broker messages the endpoint takes, and why it refuses the others.

The sender of a message is its AMQP ``user_id``, which RabbitMQ refuses to
accept unless it names the publishing connection's user. Topic permissions
alone do not decide who reaches an endpoint's queues: RabbitMQ does not check
them when it dead-letters a message or passes it to an alternate exchange.
"""

import re
from typing import Any

from ..config import Config
from ..containers.registry import RAW
from ..containers.runtimes import ContainerError
from ..limits import walltime_problem
from ..protocol import ErrorKind, Result, Task
from ..protocol.broker_names import reply_key_owner
from .queue_migration import MOVED_FOR_HEADER

# Task ids travel in logs, in JSON lists and as AMQP message ids: the SDK's uuids and the like, nothing else.
TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class Admission:
    def __init__(self, owner: str, config: Config):
        self.owner = owner
        self.config = config  # the daemon's own: a reload updates it in place

    def sender_of(self, properties: Any) -> str | None:
        """Who sent a task: its ``user_id``; for a task the owner moved between queues (``migrate-queues``), the
        sender it was moved for. Only the owner can publish as the owner, and it may submit anything anyway."""
        moved_for = (properties.headers or {}).get(MOVED_FOR_HEADER) if properties.user_id == self.owner else None
        if isinstance(moved_for, bytes):
            moved_for = moved_for.decode(errors="replace")
        return moved_for if isinstance(moved_for, str) and moved_for else properties.user_id

    def task_sender_refusal(self, sender: str | None) -> str | None:
        if sender is not None and (sender == self.owner or sender in self.config.allowed_submitters):
            return None
        return (f"sender not permitted: {describe_sender(sender)} may not submit tasks to this endpoint; only its "
                "owner and the identities in its allowed_submitters may")

    def command_sender_refusal(self, sender: str | None) -> str | None:
        if sender == self.owner:
            return None
        return f"sender not permitted: {describe_sender(sender)} may not command this endpoint; only its owner may"

    @classmethod
    def task_refusal_reason(cls, task: Task, sender: str) -> tuple[str, str] | None:
        """(reason, detail) for a task that cannot even be answered (it goes to the dead-letter queue), or None."""
        if not TASK_ID.match(task.task_id):
            return "bad-task-id", (f"task id {task.task_id[:60]!r} is not 1 to 128 letters, digits, '_', '.', ':' "
                                   "or '-' (starting with a letter or digit)")
        refused = cls.reply_refusal(task, sender)
        return ("bad-reply-to", refused) if refused else None

    @staticmethod
    def reply_refusal(task: Task, sender: str) -> str | None:
        """Results go back to the sender's own keys only, so a task cannot aim them at someone else."""
        if reply_key_owner(task.reply_to) == sender:
            return None
        return f"reply_to {task.reply_to!r} is not a result key of the sender ({sender}.SESSION)"

    def task_refusal(self, task: Task, size: int) -> Result | None:
        """Why a well-formed task from a permitted sender will not run here (answered as its result)."""
        limit = self.config.max_payload_bytes
        if size > limit:
            return Result.failure(task.task_id, ErrorKind.PAYLOAD_TOO_LARGE,
                                  f"the task is {size / 2**20:.1f} MiB, over the endpoint's limit of "
                                  f"{limit / 2**20:.1f} MiB (max_payload_bytes)", error_type="PayloadTooLarge")
        problem = walltime_problem(task.walltime) or self.mpi_problem(task)
        if problem:
            return Result.failure(task.task_id, ErrorKind.INVALID_TASK, problem, error_type="InvalidTask")
        try:
            container = self.config.container_registry.resolve(task.container_type)
        except ContainerError as exc:
            return Result.failure(task.task_id, ErrorKind.INVALID_TASK, str(exc), error_type="ContainerNotAllowed")
        task.container_type = container.key if container else RAW  # routed by RUNTIME:IMAGE, whatever it was asked as
        allowed = self.config.allowed_functions
        if allowed is not None and task.fn_hash not in allowed:
            return Result.failure(task.task_id, ErrorKind.FUNCTION_NOT_ALLOWED,
                                  f"function {task.fn_hash} is not in this endpoint's allowed_functions",
                                  error_type="FunctionNotAllowed")
        return None

    def mpi_problem(self, task: Task) -> str | None:
        """MPI requests: only to a GlobusMPIEngine, within a block; where the ranks go is the manager's to say."""
        if task.mpi_nodes or task.mpi_prefix:
            return "mpi_nodes and mpi_prefix are set by the manager that places a task, never by its submitter"
        if not (task.num_nodes or task.ranks_per_node):
            return None
        engine = self.config.engine
        if not engine.mpi:
            return (f"this endpoint's engine is {engine.type}, which runs no MPI tasks: submit MPI work to an "
                    "endpoint with GlobusMPIEngine, or drop resource_specification")
        if not 0 <= task.num_nodes <= engine.provider.nodes_per_block or not 0 <= task.ranks_per_node <= 65536:
            return (f"resource_specification asks for {task.num_nodes} nodes and {task.ranks_per_node} ranks per "
                    f"node; a block here has {engine.provider.nodes_per_block} nodes")
        return None


def describe_sender(sender: str | None) -> str:
    return repr(sender) if sender else "an unnamed sender (no user_id)"


def with_container_type(body: bytes, container_type: str) -> bytes:
    """The task re-packed with the container type it is routed by (it named an alias)."""
    task = Task.unpack(body)
    task.container_type = container_type
    return task.pack()

"""The words messages carry between processes, each a closed set.

They travel as plain strings (a StrEnum member is a str, so it packs as one).
Instructions are closed sets: unpacking refuses an action outside its set,
naming the field, so a typo fails at the boundary instead of being ignored by
the receiver. Reports are open: an error kind or endpoint state this side does
not know (from a newer peer) stays a string, so a result is never lost over it.
"""

from enum import StrEnum


class ControlAction(StrEnum):
    """``Control`` messages between the endpoint, the interchange and managers."""

    HELLO = "hello"  # endpoint -> interchange: a ROUTER learns a DEALER's identity only from its messages
    SHUTDOWN = "shutdown"  # endpoint -> interchange, and interchange -> managers: stop now
    REGISTER = "register"  # interchange -> manager: I do not know you (restarted, or you were declared lost)
    DRAINING = "draining"  # manager -> interchange: send me no more tasks
    BYE = "bye"  # manager -> interchange: I hold nothing and am leaving
    DRAIN = "drain"  # interchange -> manager: finish what you hold, then leave (scale-in)
    DRAIN_MANAGERS = "drain-managers"  # endpoint -> interchange: send these no more tasks and tell them to leave
    FAIL_QUEUED = "fail-queued"  # endpoint -> interchange: no block can start; fail waiting tasks with detail


class CommandAction(StrEnum):
    """``Command`` messages a client sends to an endpoint's command queue."""

    STATUS = "status"
    SHUTDOWN = "shutdown"
    DRAIN = "drain"


class EndpointState(StrEnum):
    """``StatusReport.state``: what an endpoint says of itself."""

    ONLINE = "online"
    DRAINING = "draining"
    OFFLINE = "offline"


class ErrorKind(StrEnum):
    """``Result.error_kind``: why a task failed.

    EXCEPTION is the user's own code raising; every other kind is a failure of
    the system around it, which the SDK raises as a ``TaskFailed`` subclass.
    """

    EXCEPTION = "exception"
    WORKER_DIED = "worker_died"
    WALLTIME_EXCEEDED = "walltime_exceeded"
    MANAGER_LOST = "manager_lost"
    SERIALIZATION = "serialization"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    FUNCTION_NOT_ALLOWED = "function_not_allowed"
    INVALID_TASK = "invalid_task"  # well-formed, but asks for what the endpoint does not do (a walltime of 0)
    RESOURCE_LIMIT = "resource_limit"  # over its worker's memory, process or CPU time limit
    WORKER_PROTOCOL = "worker_protocol"  # the task wrote to its worker's channel to the manager
    DEADLINE_EXCEEDED = "deadline_exceeded"  # no result long past its walltime: lost inside the endpoint
    UNDELIVERABLE = "undeliverable"  # the broker refused the result itself (larger than it accepts)
    NO_RESOURCES = "no_resources"  # every block the provider started failed; the detail says why

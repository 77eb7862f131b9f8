"""Exceptions the SDK raises, and turning a failed Result back into one."""

import importlib

from .. import serialize
from ..errors import EndpointError, ExitCode
from ..protocol import ErrorKind, Result


class SDKError(EndpointError):
    """Base of errors raised by the SDK itself (not by remote functions)."""


class UnknownEndpointError(SDKError):
    pass


class BrokerUnavailableError(SDKError):
    exit_code = ExitCode.UNAVAILABLE


class BrokerRefusedError(BrokerUnavailableError):
    """The broker answered, and refused the identity: retrying cannot help."""

    exit_code = ExitCode.NO_PERMISSION


class TaskFailed(SDKError):
    """A task failed outside the user's code (its worker died, walltime, lost manager...)."""

    def __init__(self, message: str, task_id: str = "", error_kind: str = ""):
        super().__init__(message)
        self.task_id = task_id
        self.error_kind = error_kind


class WorkerDiedError(TaskFailed):
    pass


class TaskTimeoutError(TaskFailed):
    pass


class ManagerLostError(TaskFailed):
    pass


class TaskSerializationError(TaskFailed):
    pass


class PayloadTooLargeError(TaskFailed):
    pass


class InvalidTaskError(TaskFailed):
    """The endpoint refused the task as it was sent (for example a walltime of 0); the message says why."""


class WorkerResourceError(TaskFailed):
    """The task went over one of its worker's limits (memory, processes, CPU time); the message names it."""


class WorkerProtocolError(TaskFailed):
    """The task wrote something to its worker's private channel to the manager; the worker was replaced."""


class TaskDeadlineError(TaskFailed):
    """The endpoint had no result for the task long after its walltime, and gave up on it."""


class ResultUndeliverableError(TaskFailed):
    """The task ran, but the broker refused to carry its result (typically larger than it accepts)."""


class NoResourcesError(TaskFailed):
    """Every block the endpoint asked its batch scheduler for failed; the message carries their output."""


class RemoteExecutionError(Exception):
    """The remote function raised an exception that cannot be rebuilt here.

    ``remote_type`` is its qualified type name and ``remote_traceback`` the
    traceback text from the worker.
    """

    def __init__(self, remote_type: str, message: str, remote_traceback: str):
        super().__init__(f"{remote_type}: {message}\n\nRemote traceback:\n{remote_traceback}")
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_traceback = remote_traceback


_SYSTEM_ERRORS: dict[str, type[TaskFailed]] = {
    ErrorKind.WORKER_DIED: WorkerDiedError,
    ErrorKind.WALLTIME_EXCEEDED: TaskTimeoutError,
    ErrorKind.MANAGER_LOST: ManagerLostError,
    ErrorKind.SERIALIZATION: TaskSerializationError,
    ErrorKind.PAYLOAD_TOO_LARGE: PayloadTooLargeError,
    ErrorKind.INVALID_TASK: InvalidTaskError,
    ErrorKind.RESOURCE_LIMIT: WorkerResourceError,
    ErrorKind.WORKER_PROTOCOL: WorkerProtocolError,
    ErrorKind.DEADLINE_EXCEEDED: TaskDeadlineError,
    ErrorKind.UNDELIVERABLE: ResultUndeliverableError,
    ErrorKind.NO_RESOURCES: NoResourcesError,
}


def exception_from_result(result: Result) -> BaseException:
    if result.error_kind != ErrorKind.EXCEPTION:
        cls = _SYSTEM_ERRORS.get(result.error_kind or "", TaskFailed)
        return cls(f"task {result.task_id} failed: {result.error_message}", result.task_id, result.error_kind or "")
    exc = _rebuild(result)
    if exc is None:
        return RemoteExecutionError(result.error_type or "Exception", result.error_message or "",
                                    result.traceback or "")
    if result.traceback:
        exc.add_note(f"Remote traceback (task {result.task_id}):\n{result.traceback.rstrip()}")
    return exc


def _rebuild(result: Result) -> BaseException | None:
    """The original exception object, if its type can be imported here."""
    if not result.payload:
        return None
    module = (result.error_type or "").rpartition(".")[0]
    if module and module != "__main__":
        try:
            importlib.import_module(module)
        except ImportError:
            return None
    try:
        exc = serialize.load(result.payload)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None

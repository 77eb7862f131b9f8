"""Submit Python functions to an endpoint and get their results back.

    from compute_endpoint.sdk import Executor, Client
"""

from .client import Client
from .errors import (
    BrokerUnavailableError,
    InvalidTaskError,
    ManagerLostError,
    NoResourcesError,
    PayloadTooLargeError,
    RemoteExecutionError,
    ResultUndeliverableError,
    SDKError,
    TaskDeadlineError,
    TaskFailed,
    TaskSerializationError,
    TaskTimeoutError,
    UnknownEndpointError,
    WorkerDiedError,
    WorkerProtocolError,
    WorkerResourceError,
)
from .executor import Executor
from .shell import MPIFunction, ShellFunction, ShellResult

__all__ = [
    "BrokerUnavailableError", "Client", "Executor", "InvalidTaskError", "ManagerLostError", "PayloadTooLargeError",
    "NoResourcesError", "RemoteExecutionError", "ResultUndeliverableError", "SDKError", "TaskDeadlineError",
    "TaskFailed", "TaskSerializationError", "TaskTimeoutError", "UnknownEndpointError", "WorkerDiedError",
    "WorkerProtocolError", "WorkerResourceError", "ShellFunction", "MPIFunction", "ShellResult",
]

"""Submit Python functions to an endpoint and get their results back.

    from compute_endpoint.sdk import Executor, Client
"""

from .client import Client
from .errors import (
    BrokerUnavailableError,
    ManagerLostError,
    PayloadTooLargeError,
    RemoteExecutionError,
    SDKError,
    TaskFailed,
    TaskSerializationError,
    TaskTimeoutError,
    UnknownEndpointError,
    WorkerDiedError,
)
from .executor import Executor

__all__ = [
    "BrokerUnavailableError", "Client", "Executor", "ManagerLostError", "PayloadTooLargeError",
    "RemoteExecutionError", "SDKError", "TaskFailed", "TaskSerializationError", "TaskTimeoutError",
    "UnknownEndpointError", "WorkerDiedError",
]

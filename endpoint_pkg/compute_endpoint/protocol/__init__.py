"""The wire protocol: framing, message classes and broker names, in one place."""

from .codec import PROTOCOL_VERSION, ProtocolError
from .messages import (
    Command,
    CommandReply,
    Control,
    Heartbeat,
    InterchangeStatus,
    ManagerRegistration,
    Message,
    Result,
    ResultAck,
    ResultBatch,
    StatusReport,
    Task,
    TaskBatch,
    unpack_any,
)

__all__ = [
    "PROTOCOL_VERSION", "ProtocolError", "Command", "CommandReply", "Control", "Heartbeat",
    "InterchangeStatus", "ManagerRegistration", "Message", "Result", "ResultAck", "ResultBatch",
    "StatusReport", "Task", "TaskBatch", "unpack_any",
]

"""The wire protocol: framing, message classes and broker names, in one place."""

from .codec import PROTOCOL_VERSION, ProtocolError
from .messages import (
    Bundle,
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
    bundle_up,
    group_message_id,
    kind_of,
    packed_group,
    unpack_any,
)

__all__ = [
    "PROTOCOL_VERSION", "ProtocolError", "Bundle", "Command", "CommandReply", "Control", "Heartbeat",
    "InterchangeStatus", "ManagerRegistration", "Message", "Result", "ResultAck", "ResultBatch",
    "StatusReport", "Task", "TaskBatch", "bundle_up", "group_message_id", "kind_of", "packed_group", "unpack_any",
]

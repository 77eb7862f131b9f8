"""The wire protocol: framing, message classes, their vocabulary and broker names, in one place."""

from .bundles import Bundle, bundle_up, group_message_id, packed_group, unbundle
from .codec import PROTOCOL_VERSION, ProtocolError, kind_of
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
from .vocabulary import CommandAction, ControlAction, EndpointState, ErrorKind

__all__ = [
    "PROTOCOL_VERSION", "ProtocolError", "Bundle", "Command", "CommandAction", "CommandReply", "Control",
    "ControlAction", "EndpointState", "ErrorKind", "Heartbeat", "InterchangeStatus", "ManagerRegistration",
    "Message", "Result", "ResultAck", "ResultBatch", "StatusReport", "Task", "TaskBatch", "bundle_up",
    "group_message_id", "kind_of", "packed_group", "unbundle", "unpack_any",
]

"""The wire protocol: framing, message classes, their vocabulary and broker names, in one place."""

from .bundles import Bundle, bundle_up, group_message_id, packed_group, unbundle
from .codec import PROTOCOL_VERSION, ProtocolError, kind_of
from .component_messages import (
    Control,
    Heartbeat,
    InterchangeStatus,
    ManagerRegistration,
    ResultAck,
    ResultBatch,
    TaskBatch,
)
from .messages import Command, CommandReply, Message, Result, StatusReport, Task, unpack_any
from .vocabulary import CommandAction, ControlAction, EndpointState, ErrorKind

__all__ = [
    "PROTOCOL_VERSION", "ProtocolError", "Bundle", "Command", "CommandAction", "CommandReply", "Control",
    "ControlAction", "EndpointState", "ErrorKind", "Heartbeat", "InterchangeStatus", "ManagerRegistration",
    "Message", "Result", "ResultAck", "ResultBatch", "StatusReport", "Task", "TaskBatch", "bundle_up",
    "group_message_id", "kind_of", "packed_group", "unbundle", "unpack_any",
]

"""Every message the components exchange, each a small typed class.

Nothing else in the code builds message dicts by hand: construct one of these
and call ``pack()``; decode with ``unpack()`` (one known class) or
``unpack_any()`` (dispatch on the kind byte). Unpacking checks every header
field's presence and type and names the first that is wrong.
"""

import dataclasses
import json
import types
from dataclasses import dataclass, field
from typing import ClassVar

from .codec import ProtocolError, decode, decode_header, encode

_REGISTRY: dict[int, type["Message"]] = {}


class Message:
    """Base of all messages: a header of typed fields plus optional opaque payload."""

    __slots__ = ()
    KIND: ClassVar[int]
    _fields: ClassVar[tuple[tuple[str, object, bool], ...]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "KIND" in cls.__dict__:
            # dataclass(slots=True) re-creates the class, so the same name may register twice.
            if cls.KIND in _REGISTRY and _REGISTRY[cls.KIND].__qualname__ != cls.__qualname__:
                raise TypeError(f"message kind {cls.KIND} defined twice")
            _REGISTRY[cls.KIND] = cls

    def header(self) -> dict:
        return {name: getattr(self, name) for name, _, _ in self._schema()}

    def pack(self) -> bytes:
        return encode(self.KIND, self.header(), getattr(self, "payload", b""))

    @classmethod
    def unpack(cls, data: bytes):
        kind, header, payload = decode(data)
        if kind != cls.KIND:
            raise ProtocolError("wrong-kind", f"expected a {cls.__name__} message (kind {cls.KIND}), got kind {kind}")
        return cls.from_parts(header, payload)

    @classmethod
    def peek(cls, data: bytes):
        """The message without its payload (payload left empty): cheap for large tasks."""
        kind, header, _ = decode_header(data)
        if kind != cls.KIND:
            raise ProtocolError("wrong-kind", f"expected a {cls.__name__} message (kind {cls.KIND}), got kind {kind}")
        return cls.from_parts(header, b"")

    @classmethod
    def from_parts(cls, header: dict, payload: bytes):
        values = {}
        for name, expected, required in cls._schema():
            if name not in header:
                if required:
                    raise ProtocolError("missing-field", f"{cls.__name__} message lacks required field '{name}'")
                continue
            value = header[name]
            if not _is_instance(value, expected):
                raise ProtocolError(
                    "bad-field",
                    f"{cls.__name__} field '{name}' must be {_type_name(expected)}, got {type(value).__name__}",
                )
            values[name] = value
        if "payload" in cls.__dataclass_fields__:
            values["payload"] = payload
        return cls(**values)

    @classmethod
    def _schema(cls):
        # Computed once per class: (name, type, required) for header fields.
        if "_fields" not in cls.__dict__:
            cls._fields = tuple(
                (f.name, f.type, f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                for f in dataclasses.fields(cls)
                if f.name != "payload"
            )
        return cls._fields


def _is_instance(value, expected) -> bool:
    if isinstance(value, bool) and expected in (int, float):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    if isinstance(expected, types.UnionType) and float in expected.__args__ and isinstance(value, int):
        return not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected) -> str:
    if isinstance(expected, types.UnionType):
        return " or ".join(_type_name(t) for t in expected.__args__)
    return {type(None): "null", str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "an object"}.get(expected, expected.__name__)


def unpack_any(data: bytes) -> Message:
    kind, header, payload = decode(data)
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ProtocolError("unknown-kind", f"unknown message kind {kind}")
    return cls.from_parts(header, payload)


# --- SDK <-> endpoint (AMQP) -------------------------------------------------


@dataclass(slots=True)
class Task(Message):
    """A function call to run. Payload: serialized function bytes, then serialized arguments."""

    KIND: ClassVar[int] = 1
    task_id: str
    fn_hash: str
    fn_len: int
    reply_to: str
    submitter: str = ""
    container_type: str = "RAW"
    walltime: float | None = None
    submitted_at: float = 0.0
    payload: bytes = b""


# Values of Result.error_kind. "exception" is the user's own error; the rest
# are failures of the system around the function.
EXCEPTION = "exception"
WORKER_DIED = "worker_died"
WALLTIME = "walltime_exceeded"
MANAGER_LOST = "manager_lost"
SERIALIZATION = "serialization"
PAYLOAD_TOO_LARGE = "payload_too_large"
MALFORMED_TASK = "malformed_task"
NO_SUCH_CONTAINER = "no_such_container"


@dataclass(slots=True)
class Result(Message):
    """The outcome of one task. Payload: the serialized value, or the pickled exception."""

    KIND: ClassVar[int] = 2
    task_id: str
    ok: bool
    error_kind: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    manager: str = ""
    worker_pid: int = 0
    attempts: int = 1
    started_at: float = 0.0
    finished_at: float = 0.0
    payload: bytes = b""

    @classmethod
    def failure(cls, task_id: str, error_kind: str, message: str, **extra) -> "Result":
        """A result for a task that failed outside user code (no pickled exception)."""
        return cls(task_id=task_id, ok=False, error_kind=error_kind, error_message=message, **extra)


@dataclass(slots=True)
class StatusReport(Message):
    """Published by the endpoint every heartbeat period and on state changes."""

    KIND: ClassVar[int] = 3
    endpoint_id: str
    name: str
    owner: str
    state: str  # "online", "draining" or "offline"
    sent_at: float
    heartbeat_period: float
    display_name: str = ""
    hostname: str = ""
    version: str = ""
    managers: int = 0
    workers: int = 0
    idle_workers: int = 0
    outstanding_tasks: int = 0
    tasks_completed: int = 0
    detail: dict = field(default_factory=dict)


@dataclass(slots=True)
class Command(Message):
    """An instruction to a running endpoint, sent to its command queue."""

    KIND: ClassVar[int] = 4
    command_id: str
    action: str  # "status", "shutdown" or "drain"
    reply_to: str = ""
    sent_at: float = 0.0


@dataclass(slots=True)
class CommandReply(Message):
    """Payload: the reply's data as JSON (a status can list a thousand managers: not a header)."""

    KIND: ClassVar[int] = 5
    command_id: str
    ok: bool
    message: str = ""
    payload: bytes = b""

    @classmethod
    def of(cls, command_id: str, ok: bool, message: str = "", data: dict | None = None) -> "CommandReply":
        return cls(command_id=command_id, ok=ok, message=message, payload=json.dumps(data or {}).encode())

    @property
    def data(self) -> dict:
        return json.loads(self.payload) if self.payload else {}


# --- endpoint <-> interchange <-> managers (ZeroMQ) ---------------------------


@dataclass(slots=True)
class ManagerRegistration(Message):
    """A manager announcing itself, its capacity and the tasks it already holds."""

    KIND: ClassVar[int] = 10
    manager_id: str
    hostname: str
    pid: int
    workers: int
    prefetch: int = 0
    container_types: list = field(default_factory=lambda: ["RAW"])
    warm_containers: list = field(default_factory=list)
    known_tasks: list = field(default_factory=list)
    last_batch: int = 0
    version: str = ""


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
    known_tasks: list = field(default_factory=list)
    last_batch: int = 0
    idle_workers: int = 0
    warm_containers: list = field(default_factory=list)


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
    task_ids: list


@dataclass(slots=True)
class Control(Message):
    """An instruction between components: "register", "drain", "shutdown", "status"."""

    KIND: ClassVar[int] = 15
    action: str
    data: dict = field(default_factory=dict)


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
    payload: bytes = b""

    @classmethod
    def of(cls, managers: list[dict], **fields) -> "InterchangeStatus":
        return cls(payload=json.dumps(managers).encode(), **fields)

    @property
    def managers(self) -> list[dict]:
        return json.loads(self.payload) if self.payload else []


# --- batching on the AMQP leg ---------------------------------------------------


@dataclass(slots=True)
class Bundle(Message):
    """Several packed messages in one: tasks from the SDK, or results to it.

    One AMQP message instead of many spares the broker and both clients most of
    their per-message work. ``sizes`` gives each item's length in the payload.
    """

    KIND: ClassVar[int] = 18
    sizes: list
    payload: bytes = b""

    @classmethod
    def of(cls, items: list[bytes]) -> "Bundle":
        return cls(sizes=[len(item) for item in items], payload=b"".join(items))

    def items(self) -> list[bytes]:
        if sum(self.sizes) != len(self.payload) or not all(isinstance(n, int) and n >= 0 for n in self.sizes):
            raise ProtocolError("bad-bundle", f"bundle sizes {self.sizes[:8]}... do not add up to its "
                                              f"{len(self.payload)}-byte payload")
        view, out, offset = memoryview(self.payload), [], 0
        for size in self.sizes:
            out.append(bytes(view[offset:offset + size]))
            offset += size
        return out


def kind_of(data: bytes) -> int:
    """The kind byte of a packed message, or -1 when it is too short to have one."""
    return data[3] if len(data) > 3 and data[:2] == b"CE" else -1


def bundle_up(items: list[bytes], max_items: int, max_bytes: int) -> list[list[bytes]]:
    """Split items, in order, into groups small enough to send as one Bundle each."""
    groups: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for item in items:
        if current and (len(current) >= max_items or size + len(item) > max_bytes):
            groups.append(current)
            current, size = [], 0
        current.append(item)
        size += len(item)
    if current:
        groups.append(current)
    return groups


def packed_group(group: list[bytes]) -> bytes:
    """One message for a group: the item itself when alone, else a Bundle of them."""
    return group[0] if len(group) == 1 else Bundle.of(group).pack()


def group_message_id(first_task_id: str, count: int) -> str:
    """The AMQP message id of a packed group: its task's id when alone, else marked as a bundle."""
    return first_task_id if count == 1 else f"bundle:{first_task_id}"

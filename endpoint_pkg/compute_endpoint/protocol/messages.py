"""Every message the components exchange, each a small typed class.

Nothing else in the code builds message dicts by hand: construct one of these
and call ``pack()``; decode with ``unpack()`` (one known class) or
``unpack_any()`` (dispatch on the kind byte). Unpacking checks every header
field's presence and type (list items and enum values included) and names
the first that is wrong.

A list that grows with the work a component holds (task ids a manager declares or is acknowledged for) is
``in_payload()``: a JSON array as the payload, not in the header, whose size is capped (~1,700 task ids).
"""

import dataclasses
import json
import types
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, NamedTuple, TypeVar

from .codec import ProtocolError, decode, decode_header, encode
from .vocabulary import CommandAction, EndpointState, ErrorKind

M = TypeVar("M", bound="Message")
_REGISTRY: dict[int, type["Message"]] = {}


class HeaderField(NamedTuple):
    name: str
    expected: Any  # the declared type
    required: bool
    plain: frozenset[type]  # types a decoded JSON value may have to pass without a closer look (the fast path)
    members: dict[str, Enum] | None  # for a field of an enum type: each value's member (others stay strings)


Schema = tuple[HeaderField, ...]


def in_payload() -> Any:
    """Declare a ``list[str]`` field that is carried as the payload (see the module's docstring)."""
    return field(default_factory=list, metadata={"in_payload": True})


class Message:
    """Base of all messages: a header of typed fields plus optional opaque payload."""

    __slots__ = ()
    KIND: ClassVar[int]
    _fields: ClassVar[Schema]
    _payload_list: ClassVar[str | None]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "KIND" in cls.__dict__:
            # dataclass(slots=True) re-creates the class, so the same name may register twice.
            if cls.KIND in _REGISTRY and _REGISTRY[cls.KIND].__qualname__ != cls.__qualname__:
                raise TypeError(f"message kind {cls.KIND} defined twice")
            _REGISTRY[cls.KIND] = cls

    def header(self) -> dict:
        return {f.name: getattr(self, f.name) for f in self._schema()}

    def pack(self) -> bytes:
        self._schema()
        if self._payload_list is not None:
            return encode(self.KIND, self.header(), json.dumps(getattr(self, self._payload_list)).encode())
        return encode(self.KIND, self.header(), getattr(self, "payload", b""))

    @classmethod
    def unpack(cls: type[M], data: bytes) -> M:
        kind, header, payload = decode(data)
        if kind != cls.KIND:
            raise ProtocolError("wrong-kind", f"expected a {cls.__name__} message (kind {cls.KIND}), got kind {kind}")
        return cls.from_parts(header, payload)

    @classmethod
    def peek(cls: type[M], data: bytes) -> M:
        """The message without its payload (payload left empty): cheap for large tasks."""
        kind, header, _ = decode_header(data)
        if kind != cls.KIND:
            raise ProtocolError("wrong-kind", f"expected a {cls.__name__} message (kind {cls.KIND}), got kind {kind}")
        return cls.from_parts(header, b"")

    @classmethod
    def from_parts(cls: type[M], header: dict, payload: bytes) -> M:
        values = {}
        for f in cls._schema():
            if f.name not in header:
                if f.required:
                    raise ProtocolError("missing-field", f"{cls.__name__} message lacks required field '{f.name}'")
                continue
            value = header[f.name]
            if type(value) not in f.plain and not _is_instance(value, f.expected):
                raise ProtocolError("bad-field", f"{cls.__name__} field '{f.name}' must be "
                                                 f"{_type_name(f.expected)}, got {_describe(value, f.expected)}")
            values[f.name] = f.members.get(value, value) if f.members is not None and value is not None else value
        if cls._payload_list is not None:
            values[cls._payload_list] = _id_list(cls.__name__, cls._payload_list, payload)
        elif "payload" in cls.__dataclass_fields__:  # type: ignore[attr-defined]
            values["payload"] = payload
        return cls(**values)

    @classmethod
    def _schema(cls) -> Schema:
        if "_fields" not in cls.__dict__:  # computed once per class
            fields = dataclasses.fields(cls)  # type: ignore[arg-type]
            in_payload = [f.name for f in fields if f.metadata.get("in_payload")]
            cls._payload_list = in_payload[0] if in_payload else None
            cls._fields = tuple(
                HeaderField(f.name, f.type,
                            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                            _plain_types(f.type), _members(f.type))
                for f in fields
                if f.name != "payload" and f.name not in in_payload
            )
        return cls._fields


_PLAIN: dict[type, set[type]] = {str: {str}, int: {int}, float: {int, float}, bool: {bool}, dict: {dict},
                              type(None): {type(None)}}


def _options(expected: Any) -> tuple:
    """The types a declared type admits: each member of X | Y, or the type itself."""
    return expected.__args__ if isinstance(expected, types.UnionType) else (expected,)


def _plain_types(expected: Any) -> frozenset[type]:
    """The JSON types that need no closer look; lists and enum values always get one."""
    return frozenset(t for option in _options(expected) for t in _PLAIN.get(option, ()))


def _members(expected: Any) -> dict[str, Enum] | None:
    enum = next((t for t in _options(expected) if isinstance(t, type) and issubclass(t, Enum)), None)
    return None if enum is None else {member.value: member for member in enum}


def _is_instance(value: Any, expected: Any) -> bool:
    if isinstance(expected, types.UnionType):
        return any(_is_instance(value, option) for option in _options(expected))
    if isinstance(expected, types.GenericAlias):  # list[X] (the only generic in messages): each item is checked
        (item_type,) = expected.__args__
        return isinstance(value, list) and all(_is_instance(item, item_type) for item in value)
    if isinstance(expected, type) and issubclass(expected, Enum):
        return isinstance(value, str) and value in expected._value2member_map_
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _type_name(expected: Any) -> str:
    if isinstance(expected, types.UnionType):
        return " or ".join(_type_name(t) for t in expected.__args__)
    if isinstance(expected, types.GenericAlias):
        item = _type_name(expected.__args__[0]).removeprefix("an ").removeprefix("a ")
        return f"a list of {item}s"
    if isinstance(expected, type) and issubclass(expected, Enum):
        return "one of " + ", ".join(repr(member.value) for member in expected)
    return {type(None): "null", str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "an object"}.get(expected, getattr(expected, "__name__", str(expected)))


def _describe(value: Any, expected: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if isinstance(value, list) and isinstance(expected, types.GenericAlias):
        item_type = expected.__args__[0]
        odd = next(item for item in value if not _is_instance(item, item_type))
        return f"a list holding {_describe(odd, item_type)}"
    return type(value).__name__


def _id_list(message: str, name: str, payload: bytes) -> list[str]:
    try:
        ids = json.loads(payload) if payload else []
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("bad-payload", f"{message} field '{name}' (its payload) is not a JSON array") from None
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise ProtocolError("bad-field", f"{message} field '{name}' must be a list of strings")
    return ids


def unpack_any(data: bytes) -> "Message":
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
    num_nodes: int = 0  # an MPI task (GlobusMPIEngine): the nodes it asks for, and ranks on each
    ranks_per_node: int = 0
    mpi_nodes: str = ""  # set by the manager that places it (never by a submitter): its nodes, comma-separated,
    mpi_prefix: str = ""  # and the launcher command that starts its ranks there
    python_version: str = ""  # the submitter's "major.minor": by-value code runs only under the same one
    payload: bytes = b""


@dataclass(slots=True)
class Result(Message):
    """The outcome of one task. Payload: the serialized value, or the pickled exception."""

    KIND: ClassVar[int] = 2
    task_id: str
    ok: bool
    # Open: a kind this side does not know (from a newer peer) stays a string, and fails the task anyway.
    error_kind: ErrorKind | str | None = None
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
    def failure(cls, task_id: str, error_kind: ErrorKind, message: str, **extra: Any) -> "Result":
        """A result for a task that failed outside user code (no pickled exception)."""
        return cls(task_id=task_id, ok=False, error_kind=error_kind, error_message=message, **extra)


@dataclass(slots=True)
class StatusReport(Message):
    """Published by the endpoint every heartbeat period and on state changes."""

    KIND: ClassVar[int] = 3
    endpoint_id: str
    name: str
    owner: str
    state: EndpointState | str  # open, like error_kind: a newer endpoint's state is shown as it came
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
    action: CommandAction
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

"""Several packed messages travelling as one AMQP message, both ways.

One message instead of many spares the broker and both clients most of their
per-message work: the SDK bundles the tasks it submits in quick succession,
the endpoint the results it returns to one submitter.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from .codec import ProtocolError, kind_of
from .messages import Message

T = TypeVar("T")


@dataclass(slots=True)
class Bundle(Message):
    """Packed messages in one; ``sizes`` gives each item's length in the payload."""

    KIND: ClassVar[int] = 18
    sizes: list[int]
    payload: bytes = b""

    @classmethod
    def of(cls, items: Sequence[bytes]) -> "Bundle":
        return cls(sizes=[len(item) for item in items], payload=b"".join(items))

    def items(self) -> list[bytes]:
        if any(n < 0 for n in self.sizes) or sum(self.sizes) != len(self.payload):
            raise ProtocolError("bad-bundle", f"bundle sizes {self.sizes[:8]}... do not add up to its "
                                              f"{len(self.payload)}-byte payload")
        view, out, offset = memoryview(self.payload), [], 0
        for size in self.sizes:
            out.append(bytes(view[offset:offset + size]))
            offset += size
        return out


def unbundle(body: bytes) -> list[bytes]:
    """The packed messages an AMQP message carries: a Bundle's items, or the message itself."""
    return Bundle.unpack(body).items() if kind_of(body) == Bundle.KIND else [body]


def bundle_up(items: Sequence[T], max_items: int, max_bytes: int,
              size: Callable[[T], int] = len) -> list[list[T]]:  # type: ignore[assignment]
    """Split items, in order, into groups small enough to send as one Bundle each."""
    groups: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        length = size(item)
        if current and (len(current) >= max_items or total + length > max_bytes):
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += length
    if current:
        groups.append(current)
    return groups


def packed_group(group: Sequence[bytes]) -> bytes:
    """One message for a group: the item itself when alone, else a Bundle of them."""
    return group[0] if len(group) == 1 else Bundle.of(group).pack()


def group_message_id(first_task_id: str, count: int) -> str:
    """The AMQP message id of a packed group: its task's id when alone, else marked as a bundle."""
    return first_task_id if count == 1 else f"bundle:{first_task_id}"

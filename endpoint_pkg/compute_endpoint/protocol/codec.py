"""Binary framing shared by every message on every leg (AMQP, ZeroMQ, worker pipes).

A packed message is::

    b"CE" | version (1 byte) | kind (1 byte) | header length (4 bytes, big endian)
    | header (UTF-8 JSON object) | payload (opaque bytes)

The header carries the routing metadata the endpoint, interchange and manager
need; the payload carries serialized user data that only workers and the SDK
ever deserialize.
"""

import json
import math
import struct

MAGIC = b"CE"
PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 64 * 1024
# The largest task or result an endpoint accepts unless its config says otherwise (max_payload_bytes).
DEFAULT_MAX_PAYLOAD_BYTES = 10 * 2**20

_PREFIX = struct.Struct("!2sBBI")
_KIND_OFFSET = len(MAGIC) + 1  # after the magic and the version byte


class ProtocolError(ValueError):
    """A message that cannot be decoded; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def encode(kind: int, header: dict, payload: bytes = b"") -> bytes:
    """Pack a message; a NaN or infinite number in the header raises ValueError (no peer would take it)."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return _PREFIX.pack(MAGIC, PROTOCOL_VERSION, kind, len(head)) + head + payload


def decode(data: bytes) -> tuple[int, dict, bytes]:
    """Split ``data`` into (kind, header, payload), refusing anything malformed."""
    kind, header, end = decode_header(data)
    return kind, header, bytes(data[end:])


def decode_header(data: bytes) -> tuple[int, dict, int]:
    """(kind, header, payload offset) without copying the payload: for routers of messages."""
    if len(data) < _PREFIX.size:
        raise ProtocolError("truncated", f"message of {len(data)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, kind, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ProtocolError("bad-magic",
                            f"not a compute-endpoint message (starts with {bytes(data[:2])!r}, expected {MAGIC!r})")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            "unsupported-version",
            f"protocol version {version} is not supported (this endpoint speaks version {PROTOCOL_VERSION})",
        )
    if head_len > MAX_HEADER_BYTES:
        raise ProtocolError("header-too-large", f"header of {head_len} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    end = _PREFIX.size + head_len
    if len(data) < end:
        raise ProtocolError("truncated", f"header claims {head_len} bytes but only {len(data) - _PREFIX.size} follow")
    try:
        header = json.loads(bytes(data[_PREFIX.size:end]), parse_constant=_not_a_number, parse_float=_finite)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("bad-header", f"header is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("bad-header", "header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad-header", f"header must be a JSON object, got {type(header).__name__}")
    return kind, header, end


def _not_a_number(name: str) -> float:
    # Python's json takes NaN and Infinity, which disable any limit compared with them (now > NaN is never true).
    raise ValueError(f"{name} is not a number this protocol accepts")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as infinity
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def kind_of(data: bytes) -> int:
    """The kind byte of a packed message, or -1 when ``data`` does not start like one."""
    if len(data) < _PREFIX.size or data[:len(MAGIC)] != MAGIC:
        return -1
    return data[_KIND_OFFSET]

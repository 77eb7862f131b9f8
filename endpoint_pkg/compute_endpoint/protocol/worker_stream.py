"""Length-prefixed frames on the stream socket (a socketpair) between a manager and each worker."""

import socket
import struct

_LENGTH = struct.Struct("!I")


def write_frame(sock: socket.socket, data: bytes) -> None:
    """One system call for header and body in the usual case; sendall finishes a partial send."""
    head = _LENGTH.pack(len(data))
    sent = sock.sendmsg([head, data])
    if sent < len(head):
        sock.sendall(head[sent:])
        sent = len(head)
    if sent - len(head) < len(data):
        sock.sendall(memoryview(data)[sent - len(head):])


def read_frame(sock: socket.socket) -> bytes | None:
    """Blocking read of one frame; None when the peer closed the stream."""
    head = _read_exactly(sock, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


class FrameTooLarge(ValueError):
    def __init__(self, length: int, limit: int):
        super().__init__(f"a frame of {length} bytes announced, over the limit of {limit}")
        self.length = length


class FrameReader:
    """Incremental decoder for a non-blocking reader: feed bytes, get whole frames.

    A frame announcing more than ``max_frame`` bytes raises FrameTooLarge before
    any of it is buffered: the reader is the manager, the writer a worker that
    runs whatever a task says.
    """

    def __init__(self, max_frame: int = 2**32 - 1) -> None:
        self._buffer = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > self.max_frame:
                raise FrameTooLarge(length, self.max_frame)
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            frames.append(bytes(self._buffer[_LENGTH.size:end]))
            del self._buffer[:end]
        return frames

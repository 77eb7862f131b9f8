"""A ZeroMQ peer speaking the manager protocol by hand, to show what an interchange does with what it is told."""

import time
from collections.abc import Callable

import zmq

from compute_endpoint.protocol import Heartbeat, ManagerRegistration, Message, ProtocolError, unpack_any


class RawManager:
    def __init__(self, address: str, manager_id: str, secure: Callable[[zmq.Socket], None] | None = None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        if secure is not None:
            secure(self.sock)
        self.sock.setsockopt(zmq.IDENTITY, manager_id.encode())
        self.sock.connect(address)
        self.manager_id = manager_id
        self.held: list[str] = []  # task ids received, declared in heartbeats

    def register(self, timeout: float = 5.0, **fields) -> bool:
        """True once the interchange answers the registration (with its heartbeat)."""
        fields = {"hostname": "raw", "pid": 1, "workers": 1, **fields}
        self.sock.send(ManagerRegistration(manager_id=self.manager_id, **fields).pack())
        return self.receive(Heartbeat, timeout) is not None

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def heartbeat(self) -> None:
        self.send(Heartbeat(sender=self.manager_id, known_tasks=self.held).pack())

    def receive(self, kind: type[Message], timeout: float = 10.0) -> tuple[Message, list[bytes]] | None:
        """The next message of ``kind`` and the frames after it, heartbeating meanwhile; None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(min(left, 0.3) * 1000)):
                self.heartbeat()
                continue
            frames = self.sock.recv_multipart()
            try:
                msg = unpack_any(frames[0])
            except ProtocolError:
                continue
            if isinstance(msg, kind):
                return msg, frames[1:]
        return None

    def close(self) -> None:
        self.ctx.destroy(linger=0)

"""The endpoint's ZeroMQ link to its interchange, driven by pika's ioloop.

ZeroMQ exposes an edge-style notification descriptor: it signals "something
changed", not "a message is waiting". So after every wake-up and after every
send we drain until ``zmq.EVENTS`` reports nothing readable; a slow periodic
drain is the safety net.
"""

import logging
from collections.abc import Callable

import zmq
from pika.adapters.select_connection import IOLoop

from ..protocol import Control, ControlAction, Message, TaskBatch, unpack_any
from ..protocol.codec import ProtocolError
from ..zmq_sockets import make_socket

log = logging.getLogger(__name__)

IDENTITY = b"endpoint"
_DRAIN_BATCH = 2000


class InterchangeLink:
    def __init__(self, ioloop: IOLoop, address: str, on_message: Callable[[Message, list[bytes]], None]):
        self._ioloop = ioloop
        self._on_message = on_message
        self.ctx = zmq.Context()
        self.sock = make_socket(self.ctx, zmq.DEALER, IDENTITY)
        self.sock.connect(address)
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._drain_scheduled = False
        ioloop.add_handler(self.sock.getsockopt(zmq.FD), self._on_fd, ioloop.READ)

    def send_task(self, data: bytes) -> None:
        """Queue a packed task; they go out as one batch at the next flush()."""
        self._outgoing.append(data)
        if not self._flush_scheduled:  # a safety net, in case the caller does not flush
            self._flush_scheduled = True
            self._ioloop.call_later(0, self.flush)

    def send_control(self, action: ControlAction) -> None:
        self.send(Control(action=action))

    def send(self, msg: Message) -> None:
        self.sock.send(msg.pack())
        self.drain()

    def flush(self) -> None:
        """Send the queued tasks now, as one message."""
        self._flush_scheduled = False
        if self._outgoing:
            batch, self._outgoing = self._outgoing, []
            self.sock.send_multipart([TaskBatch().pack()] + batch, copy=False)
        self.drain()

    def _on_fd(self, _fd: int, _events: int) -> None:
        self.drain()

    def drain(self) -> None:
        """Handle waiting messages; reschedules itself rather than hogging the loop."""
        for _ in range(_DRAIN_BATCH):
            if not int(self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                return
            frames = self.sock.recv_multipart(zmq.NOBLOCK)
            try:
                self._on_message(unpack_any(frames[0]), frames[1:])
            except ProtocolError as exc:
                log.error("dropped a malformed message from the interchange: %s", exc)
            except Exception:  # this runs in the daemon's ioloop: an exception here would end the daemon
                log.exception("internal error handling a message from the interchange; dropped it")
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self._ioloop.call_later(0, self._scheduled_drain)

    def _scheduled_drain(self) -> None:
        self._drain_scheduled = False
        self.drain()

    def close(self) -> None:
        try:
            self._ioloop.remove_handler(self.sock.getsockopt(zmq.FD))
        except Exception:  # the loop may already be closed at exit
            pass
        self.sock.close()
        self.ctx.term()

"""Notice when the interchange refuses this manager's CurveZMQ key, and try again later.

libzmq gives up on a connection whose handshake the other side refused: it
does not reconnect. So the manager watches its socket's handshake events,
says in its log which key was refused and how to admit it, and reconnects
itself with a growing delay, so that authorizing the key on the endpoint's
host is enough for a waiting manager to join.
"""

import logging
import struct
import time

import zmq

from ..backoff import Backoff
from ..curve import fingerprint

log = logging.getLogger(__name__)

_REFUSED = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
_LOG_EVERY_SECONDS = 60.0


class LinkWatch:
    def __init__(self, sock: zmq.Socket, address: str, public_key: str):
        self.sock = sock
        self.address = address
        self.public_key = public_key
        self.monitor = sock.get_monitor_socket(_REFUSED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.reconnect_at: float | None = None
        self.refused = False
        self._backoff = Backoff(first=1.0, last=30.0)
        self._logged = -1e9

    def on_events(self) -> None:
        while True:
            try:
                frames = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # A monitor event: 16-bit event number and 32-bit value, then the peer's address.
            # (pyzmq's own reader pulls in asyncio: 6 MiB more in every manager.)
            event, value = struct.unpack("=HI", frames[0][:6])
            if event & _REFUSED:
                self._on_refused(value)
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if self.refused:
                    log.info("the interchange admitted this manager's key")
                self.refused = False
                self._backoff.reset()

    def _on_refused(self, status: int) -> None:
        delay = self._backoff.next_delay()
        self.reconnect_at = time.monotonic() + delay
        self.refused = True
        if time.monotonic() - self._logged < _LOG_EVERY_SECONDS:
            return
        self._logged = time.monotonic()
        log.error("the interchange at %s refused this manager (handshake status %s): its key %s (fingerprint %s) "
                  "must be authorized on the endpoint's host with `compute-endpoint keys authorize NAME LABEL "
                  "KEY`, and this host must have the endpoint's public key; trying again in %.0fs and on",
                  self.address, status, self.public_key, fingerprint(self.public_key), delay)

    def reconnect_due(self, now: float) -> bool:
        """True (once) when it is time to connect again after a refusal."""
        if self.reconnect_at is None or now < self.reconnect_at:
            return False
        self.reconnect_at = None
        try:
            self.sock.disconnect(self.address)
        except zmq.ZMQError:
            pass  # libzmq already dropped it
        self.sock.connect(self.address)
        return True

    def close(self) -> None:
        self.sock.disable_monitor()
        self.monitor.close()

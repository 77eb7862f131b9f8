"""ZeroMQ sockets, set up the same way in every component."""

from pathlib import Path

import zmq

from .paths import ensure_private_dir


def make_socket(ctx: zmq.Context, kind: int, identity: bytes | None = None) -> zmq.Socket:
    """A socket of ``kind`` (DEALER or ROUTER) with the options every link here relies on."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)  # closing never waits on a peer that is gone
    # No high-water marks: ZeroMQ would drop or block at them; what is queued is
    # bounded by our own rules (prefetch, manager capacity) instead.
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity)
    if kind == zmq.ROUTER:
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # tell us when a peer is gone instead of dropping silently
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a peer that reconnects takes over its identity
    return sock


def bind(sock: zmq.Socket, address: str) -> None:
    """Bind, first making the directory of an ``ipc://`` socket private: that directory is its access control."""
    if address.startswith("ipc://"):
        ensure_private_dir(Path(address.removeprefix("ipc://")).parent)
    sock.bind(address)

"""Talking to RabbitMQ: what the endpoint daemon and the SDK share.

How to connect (``connection_parameters``), what a failed connection means
for the user (``describe_connection_error``), when to try again
(``Backoff``, from ``backoff.py``), the AMQP reply codes we act on (``ReplyCode``), and which
publish a publisher confirm is about (``ConfirmTracker``).
"""

import ssl
from enum import IntEnum
from typing import Any, Generic, NamedTuple, TypeVar

import pika
import pika.spec
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed
from pika.exceptions import ProbableAccessDeniedError, ProbableAuthenticationError

from .backoff import Backoff

__all__ = ["Backoff", "ConfirmTracker", "ReplyCode", "connection_parameters", "describe_connection_error",
           "reply_code", "reply_text"]

T = TypeVar("T")


class ReplyCode(IntEnum):
    """AMQP 0-9-1 reply codes the broker closes channels and connections with."""

    CONNECTION_FORCED = 320
    ACCESS_REFUSED = 403
    NOT_FOUND = 404
    PRECONDITION_FAILED = 406


def reply_code(reason: BaseException) -> int:
    """The reply code of a channel or connection closed by the broker; 0 for anything else."""
    return int(getattr(reason, "reply_code", 0) or 0)


def reply_text(reason: BaseException) -> str:
    """What the broker said when it closed a channel or connection."""
    return str(getattr(reason, "reply_text", "") or reason)


def connection_parameters(url: str, client_id: str, secret: str, *, tls_ca: str | None = None,
                          heartbeat: int = 60, connect_timeout: float = 10.0,
                          name: str = "compute-endpoint") -> pika.URLParameters:
    """Parameters for one connection attempt; reconnecting is the caller's job (see Backoff)."""
    params = pika.URLParameters(url)
    params.credentials = pika.PlainCredentials(client_id, secret, erase_on_connect=False)
    params.heartbeat = heartbeat
    params.socket_timeout = connect_timeout
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    if url.startswith("amqps://"):
        context = ssl.create_default_context(cafile=tls_ca)
        params.ssl_options = pika.SSLOptions(context, params.host)
    return params


class ConnectionFailure(NamedTuple):
    fatal: bool  # retrying cannot help: the credentials or permissions are wrong
    message: str


def describe_connection_error(error: BaseException, params: pika.ConnectionParameters, who: str) -> ConnectionFailure:
    """What a failed connection attempt means, in words for the user."""
    if isinstance(error, AMQPConnectionWorkflowFailed) and error.exceptions:
        error = error.exceptions[-1]
    where = f"{params.host}:{params.port}"
    text = str(error)
    if isinstance(error, ProbableAuthenticationError) or ("ACCESS_REFUSED" in text and "Login" in text):
        return ConnectionFailure(True, f"the broker at {where} refused the credentials of identity {who!r} "
                                       "(ACCESS_REFUSED); check COMPUTE_CLIENT_ID/COMPUTE_CLIENT_SECRET or run "
                                       "`compute-endpoint login`")
    if isinstance(error, ProbableAccessDeniedError):
        return ConnectionFailure(True, f"identity {who!r} may not use virtual host {params.virtual_host!r} on "
                                       f"{where}; ask the broker administrator for permissions")
    return ConnectionFailure(False, f"cannot reach the broker at {where}: {text or type(error).__name__}")


class ConfirmTracker(Generic[T]):
    """Which publishes a publisher confirm is about.

    The broker numbers a channel's publishes 1, 2, 3, ... from the moment it
    enters confirm mode, and confirms (or, rarely, nacks) them by number,
    singly or "multiple": every number up to the one given.
    """

    def __init__(self) -> None:
        self._seq = 0
        self._pending: dict[int, T] = {}  # insertion order is publish order

    def __len__(self) -> int:
        return len(self._pending)

    def published(self, value: T) -> int:
        """Record the next publish on the channel; returns its number."""
        self._seq += 1
        self._pending[self._seq] = value
        return self._seq

    def confirmed(self, frame: Any) -> tuple[bool, list[T]]:
        """(acked, the values it settles) for a Basic.Ack or Basic.Nack frame."""
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        if method.multiple:
            tags = []
            for seq in self._pending:
                if seq > method.delivery_tag:
                    break
                tags.append(seq)
        else:
            tags = [method.delivery_tag] if method.delivery_tag in self._pending else []
        return ok, [self._pending.pop(seq) for seq in tags]

    def pending(self) -> list[T]:
        return list(self._pending.values())

    def reset(self) -> list[T]:
        """The channel is gone, and with it any confirm still owed: the unsettled values, in publish order.

        Numbering starts again at 1 on the next channel.
        """
        values = list(self._pending.values())
        self._pending.clear()
        self._seq = 0
        return values

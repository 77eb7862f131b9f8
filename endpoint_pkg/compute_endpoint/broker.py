"""Talking to RabbitMQ: what the endpoint daemon and the SDK share.

How to connect (``connection_parameters``), what a failed connection means
for the user (``describe_connection_error``), when to try again
(``Backoff``, from ``backoff.py``), which node of a cluster to try next
(``NodeRotation``), how queues are declared on it (``queue_arguments``),
the AMQP reply codes we act on (``ReplyCode``), and which publish a
publisher confirm is about (``ConfirmTracker``).
"""

import itertools
import ssl
import time
from enum import IntEnum
from typing import Any, Generic, NamedTuple, TypeVar

import pika
import pika.spec
from pika.adapters.utils.connection_workflow import AMQPConnectionWorkflowFailed
from pika.exceptions import ProbableAccessDeniedError, ProbableAuthenticationError

from .backoff import Backoff
from .errors import ExitCode, Verdict

__all__ = ["Backoff", "ConfirmTracker", "NodeRotation", "ReplyCode", "broker_urls", "connection_parameters",
           "describe_connection_error", "node_parameters", "queue_arguments", "reply_code", "reply_text",
           "server_summary", "supports_quorum", "where", "UNREACHABLE"]

# How a connection failure that a retry may mend begins; `start` reports it as exit code 69.
UNREACHABLE = "cannot reach the broker"
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


def broker_urls(value: str | list | tuple) -> list[str]:
    """The nodes to try, in order: a list of URLs, or one string of URLs separated by commas."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def connection_parameters(url: str, client_id: str, secret: str, *, tls_ca: str | None = None,
                          heartbeat: int = 60, connect_timeout: float = 10.0,
                          name: str = "compute-endpoint") -> pika.URLParameters:
    """Parameters for one connection attempt to one node; reconnecting is the caller's job (see Backoff)."""
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


def node_parameters(urls: list[str], client_id: str, secret: str, **options: Any) -> list[pika.URLParameters]:
    """Connection parameters for each node of a broker cluster, in the order given."""
    return [connection_parameters(url, client_id, secret, **options) for url in urls]


def where(params: pika.ConnectionParameters) -> str:
    """host:port of a node, as status reports and errors name it."""
    return f"{params.host}:{params.port}"


class NodeRotation:
    """Which node of a broker cluster to try next.

    Each attempt takes the next node in turn, so that a node that is down
    costs one attempt, not a whole back-off; the back-off applies between
    rounds, once every node has been tried and none answered.
    """

    def __init__(self, nodes: list[pika.ConnectionParameters], backoff: Backoff | None = None):
        if not nodes:
            raise ValueError("no broker node to connect to")
        self.nodes = nodes
        self.backoff = backoff or Backoff()
        self._next = 0
        self._failed_in_round = 0
        self.current = nodes[0]

    def take(self) -> pika.ConnectionParameters:
        """The node for the next attempt."""
        self.current = self.nodes[self._next % len(self.nodes)]
        self._next += 1
        return self.current

    def peek(self) -> pika.ConnectionParameters:
        """The node the next attempt will take."""
        return self.nodes[self._next % len(self.nodes)]

    def failed(self) -> float:
        """The attempt on ``current`` failed: seconds to wait before the next one."""
        self._failed_in_round += 1
        if self._failed_in_round < len(self.nodes):
            return 0.0
        self._failed_in_round = 0
        return self.backoff.next_delay()

    def lost(self) -> float:
        """A working connection was lost: try the next node soon, with jitter, so clients spread out."""
        self._failed_in_round = 1 if len(self.nodes) > 1 else 0
        return self.backoff.next_delay() if len(self.nodes) == 1 else self.backoff.first * self.backoff.jitter()

    def connected(self) -> None:
        self.backoff.reset()
        self._failed_in_round = 0
        self._next = self.nodes.index(self.current) + 1


QUORUM_MIN_VERSION = (3, 10)  # quorum queues with message TTL, x-expires and x-max-length


def server_summary(server_properties: dict | None) -> dict[str, str]:
    """The cluster name and RabbitMQ version a node announced when the connection opened."""
    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")

    return {key: text((server_properties or {}).get(key)) for key in ("cluster_name", "version")}


def server_version(text: str) -> tuple[int, ...]:
    """(3, 10, 8) from "3.10.8"; () when there is no version."""
    parts = []
    for piece in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def supports_quorum(version_text: str) -> bool:
    version = server_version(version_text)
    return bool(version) and version >= QUORUM_MIN_VERSION


def queue_arguments(arguments: dict | None, quorum: bool) -> dict:
    """A queue's declaration arguments, with ``x-queue-type`` when it is to be a quorum queue."""
    declared = dict(arguments or {})
    if quorum:
        declared["x-queue-type"] = "quorum"
    return declared


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
        return ConnectionFailure(True, Verdict(f"the broker at {where} refused the credentials of identity {who!r} "
                                               "(ACCESS_REFUSED); check COMPUTE_CLIENT_ID/COMPUTE_CLIENT_SECRET or "
                                               "run `compute-endpoint login`", ExitCode.NO_PERMISSION))
    if isinstance(error, ProbableAccessDeniedError):
        return ConnectionFailure(True, Verdict(f"identity {who!r} may not use virtual host {params.virtual_host!r} on "
                                               f"{where}; ask the broker administrator for permissions",
                                               ExitCode.NO_PERMISSION))
    return ConnectionFailure(False, f"{UNREACHABLE} at {where}: {text or type(error).__name__}")


# RabbitMQ confirms a publish within milliseconds, or seconds under load. One unconfirmed for this long (seen
# once in tests, right after the leader of a quorum queue died) is taken as lost with its channel: the channel
# is reopened, and what it carried is published again (duplicates are dropped by task id).
CONFIRM_TIMEOUT = 30.0
# While a quorum queue elects a leader, publishes to it are refused (nacked) for a moment. RabbitMQ 3.10 can go
# on refusing one channel's publishes to that queue for ever, while a new channel's are taken at once (seen in
# the cluster test, about one leader kill in five): refusals to one destination with no success in between,
# for this long, make the publisher open a new channel.
NACK_PATIENCE = 5.0
NACKS_BEFORE_NEW_CHANNEL = 3


class _Publish(NamedTuple, Generic[T]):
    value: T
    sent_at: float  # time.monotonic()
    destination: str  # exchange and routing key


class ConfirmTracker(Generic[T]):
    """Which publishes a publisher confirm is about.

    The broker numbers a channel's publishes 1, 2, 3, ... from the moment it
    enters confirm mode, and confirms (or, rarely, nacks) them by number,
    singly or "multiple": every number up to the one given.
    """

    def __init__(self) -> None:
        self._seq = 0
        self._pending: dict[int, _Publish[T]] = {}  # insertion order is publish order
        self._refusals: dict[str, tuple[float, int]] = {}  # destination: (first refusal since a success, count)

    def __len__(self) -> int:
        return len(self._pending)

    def published(self, value: T, destination: str = "") -> int:
        """Record the next publish on the channel (to ``destination``: exchange and routing key); its number."""
        self._seq += 1
        self._pending[self._seq] = _Publish(value, time.monotonic(), destination)
        return self._seq

    def oldest_wait(self) -> float:
        """Seconds the oldest publish not yet settled has waited (0 when none has)."""
        first = next(iter(self._pending.values()), None)
        return 0.0 if first is None else time.monotonic() - first.sent_at

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
        settled = [self._pending.pop(seq) for seq in tags]
        for publish in settled:
            self._count_refusal(publish.destination, ok)
        return ok, [publish.value for publish in settled]

    def _count_refusal(self, destination: str, ok: bool) -> None:
        if ok:
            self._refusals.pop(destination, None)
        else:
            since, count = self._refusals.get(destination, (time.monotonic(), 0))
            self._refusals[destination] = (since, count + 1)

    def stuck(self) -> str | None:
        """Why this channel should be given up for a new one, if it should: see CONFIRM_TIMEOUT, NACK_PATIENCE."""
        waited = self.oldest_wait()
        if waited > CONFIRM_TIMEOUT:
            return f"has not confirmed a publish for {waited:.0f} s"
        now = time.monotonic()
        for destination, (since, count) in self._refusals.items():
            if count >= NACKS_BEFORE_NEW_CHANNEL and now - since > NACK_PATIENCE:
                return f"has refused {count} publishes to {destination} in {now - since:.0f} s, none taken"
        return None

    def pending(self) -> list[T]:
        return [publish.value for publish in self._pending.values()]

    def reset(self) -> list[T]:
        """The channel is gone, and with it any confirm still owed: the unsettled values, in publish order.

        Numbering starts again at 1 on the next channel.
        """
        values = self.pending()
        self._pending.clear()
        self._refusals.clear()
        self._seq = 0
        return values

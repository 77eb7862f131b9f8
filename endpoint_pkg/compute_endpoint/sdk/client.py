"""``Client``: synchronous questions to the broker about endpoints.

Reads an endpoint's last status report, sends it commands (status, shutdown,
drain) and waits for the reply, and removes its queues.
"""

import os
import time
import uuid
from typing import Any

import pika
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker

from ..broker import ReplyCode, broker_urls, describe_connection_error, node_parameters, server_summary, where
from ..config.model import DEFAULT_BROKER_URL
from ..credentials import Identity
from ..credentials.identity import identity_from_env
from ..protocol import Command, CommandAction, CommandReply, EndpointState, ProtocolError, StatusReport
from ..protocol.broker_names import RESULT_EXCHANGE, TASK_EXCHANGE, EndpointNames, ReplyAddress
from .errors import BrokerRefusedError, BrokerUnavailableError, SDKError, UnknownEndpointError


def sdk_identity(client_id: str | None, client_secret: str | None) -> Identity:
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise SDKError("pass both client_id and client_secret, or neither (to use COMPUTE_CLIENT_ID/SECRET)")
        return Identity(client_id, client_secret, "arguments")
    identity = identity_from_env()
    if identity is None:
        raise SDKError("no broker identity: pass client_id and client_secret, or set COMPUTE_CLIENT_ID and "
                       "COMPUTE_CLIENT_SECRET")
    return identity


BrokerURL = str | list[str] | tuple[str, ...] | None


def sdk_parameters(broker_url: BrokerURL, identity: Identity, tls_ca: str | None,
                   name: str) -> list[pika.URLParameters]:
    """Parameters for each broker node: ``broker_url`` (a URL, a list, or URLs separated by commas), else
    ``COMPUTE_BROKER_URL`` (the same), else the local broker."""
    urls = broker_urls(broker_url or os.environ.get("COMPUTE_BROKER_URL") or DEFAULT_BROKER_URL)
    if not urls:
        raise SDKError(f"no broker URL in {broker_url!r}")
    return node_parameters(urls, identity.client_id, identity.secret, tls_ca=tls_ca, name=name)


class Client:
    def __init__(self, broker_url: BrokerURL = None, client_id: str | None = None,
                 client_secret: str | None = None, tls_ca: str | None = None):
        self.identity = sdk_identity(client_id, client_secret)
        self.nodes = sdk_parameters(broker_url, self.identity, tls_ca, "compute-endpoint client")
        self.node = ""  # host:port of the node the last connect() reached
        self.server: dict[str, str] = {}  # its cluster name and RabbitMQ version (broker.server_summary)

    def _names(self, endpoint_id: str, owner: str | None) -> EndpointNames:
        return EndpointNames(owner or self.identity.client_id, str(endpoint_id))

    def connect(self) -> pika.BlockingConnection:
        """A connection to the first node that answers, in the order given; ``node`` and ``server`` say which."""
        failures = []
        for params in self.nodes:
            try:
                connection = pika.BlockingConnection(params)
                # BlockingConnection keeps what the node announced on the connection it wraps, and only there.
                self.node, self.server = where(params), server_summary(connection._impl.server_properties)
                return connection
            except AMQPConnectionError as exc:
                failure = describe_connection_error(exc, params, self.identity.client_id)
                if failure.fatal:
                    raise BrokerRefusedError(failure.message) from None
                failures.append(failure.message)
        raise BrokerUnavailableError("; ".join(failures))

    def endpoint_exists(self, endpoint_id: str, owner: str | None = None) -> bool:
        names = self._names(endpoint_id, owner)
        with self.connect() as conn:
            try:
                conn.channel().queue_declare(names.tasks_queue, passive=True)
            except ChannelClosedByBroker as exc:
                if exc.reply_code == ReplyCode.NOT_FOUND:
                    return False
                raise SDKError(f"the broker refused to look up endpoint {endpoint_id}: {exc.reply_text}") from None
        return True

    def queue_depths(self, queues: list[str]) -> dict[str, int | None]:
        """Messages ready in each queue, counted by the broker now (a passive declare); None for a missing one."""
        depths: dict[str, int | None] = {}
        with self.connect() as conn:
            for queue in queues:
                channel = conn.channel()
                try:
                    depths[queue] = channel.queue_declare(queue, passive=True).method.message_count
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != ReplyCode.NOT_FOUND:
                        raise SDKError(f"the broker refused to count {queue}: {exc.reply_text}") from None
                    depths[queue] = None
                else:
                    channel.close()
        return depths

    def get_endpoint_status(self, endpoint_id: str, owner: str | None = None) -> dict:
        """The endpoint's last status report, with ``status`` online, offline or disconnected."""
        names = self._names(endpoint_id, owner)
        with self.connect() as conn:
            channel = conn.channel()
            try:
                method, props, body = channel.basic_get(names.status_queue, auto_ack=False)
            except ChannelClosedByBroker as exc:
                raise _lookup_error(exc, endpoint_id, names) from None
            if method is not None:
                channel.basic_nack(method.delivery_tag, requeue=True)  # leave it for the next reader
        if method is None:
            return {"endpoint_id": str(endpoint_id), "status": "unknown",
                    "detail": "the endpoint has not reported yet"}
        if props.user_id != names.owner:
            return {"endpoint_id": str(endpoint_id), "status": "unknown",
                    "detail": f"the last status report was sent by {props.user_id!r}, not by the endpoint's "
                              f"owner {names.owner!r}; it was ignored"}
        try:
            report = StatusReport.unpack(body)
        except ProtocolError as exc:
            return {"endpoint_id": str(endpoint_id), "status": "unknown",
                    "detail": f"the last message in the status queue is not a status report ({exc}); ignored"}
        age = time.time() - report.sent_at
        threshold = report.detail.get("heartbeat_threshold", 4 * report.heartbeat_period)
        if report.state == EndpointState.OFFLINE:
            status = "offline"
        elif age > threshold:
            status = "disconnected"
        else:
            status = "online"
        summary = report.header()
        summary.update(status=status, seconds_since_report=round(age, 1))
        return summary

    def send_command(self, endpoint_id: str, action: CommandAction, timeout: float = 10.0,
                     owner: str | None = None) -> CommandReply:
        names = self._names(endpoint_id, owner)
        reply = ReplyAddress(self.identity.client_id, f"cmd-{uuid.uuid4().hex}")
        command = Command(command_id=uuid.uuid4().hex, action=action, reply_to=reply.key, sent_at=time.time())
        with self.connect() as conn:
            channel = conn.channel()
            try:
                channel.queue_declare(reply.queue, exclusive=True, auto_delete=True)
                channel.queue_bind(reply.queue, RESULT_EXCHANGE, reply.key)
                channel.confirm_delivery()
                channel.basic_publish(TASK_EXCHANGE, names.commands_key, command.pack(),
                                      pika.BasicProperties(user_id=self.identity.client_id), mandatory=True)
            except pika.exceptions.UnroutableError:
                raise UnknownEndpointError(f"endpoint {endpoint_id} has no command queue: it was never started "
                                           "or has been deleted") from None
            except ChannelClosedByBroker as exc:
                raise _lookup_error(exc, endpoint_id, names) from None
            return self._await_reply(channel, reply.queue, command.command_id, timeout, names)

    @staticmethod
    def _await_reply(channel: Any, queue: str, command_id: str, timeout: float, names: EndpointNames) -> CommandReply:
        endpoint_id = names.endpoint_id
        for _method, props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=timeout):
            if body is None:
                break
            if props.user_id != names.owner:
                continue  # only the endpoint's owner answers commands
            try:
                reply = CommandReply.unpack(body)
            except ProtocolError:
                continue
            if reply.command_id == command_id:
                return reply
        raise SDKError(f"endpoint {endpoint_id} did not answer within {timeout:g}s; is it running?")

    def delete_endpoint_queues(self, endpoint_id: str, owner: str | None = None) -> list[str]:
        names = self._names(endpoint_id, owner)
        deleted = []
        with self.connect() as conn:
            for queue in names.as_dict().values():
                channel = conn.channel()
                try:
                    channel.queue_delete(queue)
                    deleted.append(queue)
                except ChannelClosedByBroker as exc:
                    if exc.reply_code != ReplyCode.NOT_FOUND:
                        raise SDKError(f"could not delete queue {queue}: {exc.reply_text}") from None
        return deleted


def _lookup_error(exc: ChannelClosedByBroker, endpoint_id: str, names: EndpointNames) -> SDKError:
    if exc.reply_code == ReplyCode.NOT_FOUND:
        return UnknownEndpointError(f"no endpoint {endpoint_id} owned by {names.owner!r} on this broker: "
                                    "check the id (and the owner), or start the endpoint once")
    return SDKError(f"the broker refused access to endpoint {endpoint_id} of {names.owner!r}: {exc.reply_text}")

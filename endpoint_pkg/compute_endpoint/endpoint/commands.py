"""Commands to a running endpoint (status, shutdown, drain): from its owner only, answered to the owner."""

import logging
from collections.abc import Callable

import pika

from ..protocol import Command, CommandAction, CommandReply, ProtocolError
from ..protocol.broker_names import RESULT_EXCHANGE, EndpointNames, reply_key_owner
from ..protocol.codec import decode_header
from .admission import Admission
from .amqp import AmqpAgent, Delivery
from .dead_letters import DeadLetters

log = logging.getLogger(__name__)


class CommandHandler:
    def __init__(self, agent: AmqpAgent, names: EndpointNames, admission: Admission,
                 dead_letters: DeadLetters, status: Callable[[], dict],
                 outstanding: Callable[[], int], request_stop: Callable[[str], None]):
        self.agent = agent
        self.names = names
        self.admission = admission
        self.dead_letters = dead_letters
        self.status = status
        self.outstanding = outstanding
        self.request_stop = request_stop

    def on_command(self, delivery: Delivery) -> None:
        self.agent.ack(delivery)
        sender = delivery.properties.user_id
        refused = self.admission.command_sender_refusal(sender)
        if refused:
            self.dead_letters.set_aside(delivery.body, "sender-not-permitted", refused, None, sender)
            return
        try:
            cmd = Command.unpack(delivery.body)
        except ProtocolError as exc:
            self._refuse(delivery.body, exc)
            return
        log.info("command %r received", cmd.action.value)
        try:
            self._obey(cmd)
        except Exception as exc:  # in pika's callback, an exception would drop the connection and every task on it
            log.exception("internal error obeying command %r", cmd.action.value)
            self._reply(cmd.command_id, cmd.reply_to, False, f"internal error: {type(exc).__name__}: {exc}")

    def _obey(self, cmd: Command) -> None:
        if cmd.action == CommandAction.STATUS:
            self._reply(cmd.command_id, cmd.reply_to, True, "ok", self.status())
        elif cmd.action == CommandAction.SHUTDOWN:
            self._reply(cmd.command_id, cmd.reply_to, True, "shutting down")
            self.request_stop("shutdown command")
        elif cmd.action == CommandAction.DRAIN:
            self._reply(cmd.command_id, cmd.reply_to, True, f"draining {self.outstanding()} tasks")
            self.request_stop("drain command")

    def _refuse(self, body: bytes, exc: ProtocolError) -> None:
        """Tell the sender of a malformed command why, when it says where to answer."""
        log.error("refused a malformed command: %s", exc)
        try:
            header = decode_header(body)[1]
        except ProtocolError:
            return
        command_id, reply_to = header.get("command_id"), header.get("reply_to")
        if isinstance(command_id, str) and isinstance(reply_to, str):
            self._reply(command_id, reply_to, False, f"malformed command: {exc}")

    def _reply(self, command_id: str, reply_to: str, ok: bool, message: str, data: dict | None = None) -> None:
        if reply_key_owner(reply_to) != self.names.owner:
            return  # commands come from the owner only, so replies go to the owner only
        reply = CommandReply.of(command_id, ok, message, data)
        props = pika.BasicProperties(message_id=command_id, correlation_id=command_id)
        self.agent.publish(RESULT_EXCHANGE, reply_to, reply.pack(), props)

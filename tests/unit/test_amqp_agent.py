"""The endpoint's AMQP agent against a stand-in channel: the test plays the broker."""

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from compute_endpoint.broker import ReplyCode
from compute_endpoint.endpoint.amqp import COMMAND_PREFETCH, AmqpAgent, Delivery
from compute_endpoint.endpoint.queues import QueueSettings
from compute_endpoint.protocol.broker_names import EndpointNames

from ..support.fakes import FakeChannel, FakeConnection, FakeLoop

NAMES = EndpointNames("alice", "ep1")


class Recorder:
    """The daemon's side of the agent: what it was told."""

    def __init__(self):
        self.events: list[tuple] = []

    def __getattr__(self, name):
        if not name.startswith("on_"):
            raise AttributeError(name)
        return lambda *args: self.events.append((name, *args))

    def names(self) -> list[str]:
        return [event[0] for event in self.events]


class Broker:
    """An agent wired to a fake connection and channel, declared up to the point the test wants."""

    def __init__(self, identity: str = "alice"):
        self.loop = FakeLoop()
        self.daemon = Recorder()
        nodes = [pika.URLParameters("amqp://127.0.0.1:5672/%2F")]
        self.agent = AmqpAgent(self.loop, nodes, NAMES, self.daemon, identity)
        self.connection = FakeConnection()
        self.agent._connection = self.connection
        self.channel = self.open_channel()

    def open_channel(self) -> FakeChannel:
        channel = FakeChannel()
        self.agent._on_channel_open(channel)
        return channel

    def declared(self, prefetch: int | None = 8) -> "Broker":
        self.channel.answer_all()
        if prefetch is not None:
            self.agent.set_prefetch(prefetch)
            self.channel.answer_all()
        return self

    def publish(self) -> list[bool]:
        outcomes: list[bool] = []
        assert self.agent.publish("ce.results", "alice.s1", b"r", pika.BasicProperties(), on_confirm=outcomes.append)
        return outcomes


def test_the_declarations_run_in_order_then_the_endpoint_is_ready():
    b = Broker()
    b.channel.answer_all()
    declared = [(c.name, c.args[0]) for c in b.channel.calls
                if c.name == "exchange_declare" or (c.name == "queue_declare" and not c.kwargs.get("passive"))]
    assert declared == [("exchange_declare", "ce.tasks"), ("exchange_declare", "ce.results"),
                        ("queue_declare", NAMES.tasks_queue), ("queue_declare", NAMES.commands_queue),
                        ("queue_declare", NAMES.status_queue), ("queue_declare", NAMES.dead_queue)]
    assert b.agent.ready and b.daemon.names() == ["on_ready"]
    assert list(b.channel.consumers.values()) == [NAMES.commands_queue], "no task consumer before a prefetch"


def test_tasks_are_consumed_with_the_prefetch_capacity_asks_for_and_a_new_one_takes_effect():
    """The bug this guards: RabbitMQ applies basic.qos only to consumers made after it, so the
    prefetch stayed at 1 and one worker ran every task."""
    b = Broker().declared(prefetch=8)
    assert b.channel.last("basic_qos").kwargs["prefetch_count"] == 8
    first = [tag for tag, queue in b.channel.consumers.items() if queue == NAMES.tasks_queue]
    b.agent.set_prefetch(40)
    b.channel.answer_all()
    assert b.channel.last("basic_qos").kwargs["prefetch_count"] == 40
    now = [tag for tag, queue in b.channel.consumers.items() if queue == NAMES.tasks_queue]
    assert len(now) == 1 and now != first, "the consumer was made again, after the new basic.qos"
    assert b.channel.calls.index(b.channel.last("basic_qos")) < b.channel.calls.index(b.channel.last("basic_consume"))


def test_a_multiple_confirm_settles_every_publish_up_to_its_tag_and_no_further():
    b = Broker().declared()
    outcomes = [b.publish() for _ in range(4)]
    b.channel.confirm(3, multiple=True)
    assert outcomes == [[True], [True], [True], []]
    b.channel.confirm(4)
    assert outcomes[3] == [True]


def test_a_nack_tells_the_publisher_it_failed():
    b = Broker().declared()
    first, second = b.publish(), b.publish()
    b.channel.confirm(2, ack=False)
    assert (first, second) == ([], [False])


def test_a_channel_that_refuses_every_publish_to_a_queue_is_closed_for_a_new_one(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("compute_endpoint.broker.time.monotonic", lambda: clock[0])
    b = Broker().declared()
    for tag in (1, 2, 3):
        b.publish()
        clock[0] += 3
        b.channel.confirm(tag, ack=False)
        b.agent.check_confirms()
    assert b.channel.names()[-1] == "close", "refused 3 times in 6 s with none taken: a new channel"


def test_a_channel_lost_mid_declare_fails_nothing_silently_and_reconnects_with_backoff():
    b = Broker().declared()
    pending = b.publish()
    b.agent.set_prefetch(99)  # a declaration under way when the channel goes
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.PRECONDITION_FAILED, "inequivalent arg"))
    assert pending == [False], "an unconfirmed publish is reported failed, to be sent again"
    assert not b.agent.ready and not b.connection.is_open
    b.agent._on_connection_closed(b.connection, ConnectionClosedByBroker(ReplyCode.CONNECTION_FORCED, "closed"))
    assert b.daemon.names()[-1] == "on_lost"
    (delay,) = b.loop.pending()
    assert 0.25 <= delay <= 0.5, "the first reconnect comes quickly"
    consumers = b.channel.names().count("basic_consume")
    b.channel.answer_all()  # a late reply from the dead channel
    assert b.channel.names().count("basic_consume") == consumers, "starts nothing on it"


def test_publishes_on_a_new_channel_are_numbered_from_one_again():
    b = Broker().declared()
    old = b.publish()
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.PRECONDITION_FAILED, "x"))
    b.connection = FakeConnection()
    b.agent._connection = b.connection
    b.channel = b.open_channel()
    b.declared()
    new = b.publish()
    b.channel.confirm(1)
    assert old == [False] and new == [True]


def test_an_ack_for_a_delivery_of_a_lost_channel_is_not_sent():
    b = Broker().declared()
    delivery = Delivery(tag=1, epoch=b.agent.epoch, redelivered=False, properties=pika.BasicProperties(), body=b"")
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.PRECONDITION_FAILED, "x"))
    b.connection = FakeConnection()
    b.agent._connection = b.connection
    b.channel = b.open_channel()
    b.declared()
    assert b.agent.ack(delivery) is False
    assert "basic_ack" not in b.channel.names()


def test_access_refused_while_declaring_someone_elses_queue_is_fatal_and_names_the_owner():
    b = Broker(identity="bob")
    b.channel.answer()  # confirm mode
    b.channel.answer_all()
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.ACCESS_REFUSED, "access to queue refused"))
    name, message = b.daemon.events[-1]
    assert name == "on_fatal"
    assert "which belongs to 'alice'" in message and "use the owner's credentials" in message


def test_missing_shared_exchanges_are_created_when_the_identity_may():
    b = Broker()
    b.channel.answer()  # confirm mode; the passive declaration of ce.tasks is next
    assert b.channel.last("exchange_declare").kwargs["passive"] is True
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.NOT_FOUND, "no exchange 'ce.tasks'"))
    assert b.connection.channels_opened == 1, "a new channel, this time declaring the exchanges"
    b.channel = b.open_channel()
    b.channel.answer()
    assert b.channel.last("exchange_declare").kwargs["passive"] is False


@pytest.mark.parametrize("kind", ["tasks", "commands"])
def test_a_consumer_the_broker_cancels_is_declared_and_started_again(kind):
    """The broker cancels a consumer whose queue is deleted, or moves to another node."""
    b = Broker().declared(prefetch=8)
    queue = NAMES.tasks_queue if kind == "tasks" else NAMES.commands_queue
    (tag,) = [t for t, q in b.channel.consumers.items() if q == queue]
    b.channel.cancel_consumer(tag)
    b.channel.answer_all()
    assert [c.args[0] for c in b.channel.calls if c.name == "queue_declare"][-1] == queue
    assert list(b.channel.consumers.values()).count(queue) == 1, "consuming again, once"
    expected = 8 if kind == "tasks" else COMMAND_PREFETCH
    assert b.channel.last("basic_qos").kwargs["prefetch_count"] == expected, "with the prefetch it had"
    assert b.agent.ready and b.daemon.names() == ["on_ready"], "the channel and the daemon carry on"


def test_a_cancel_while_stopping_declares_nothing():
    b = Broker().declared(prefetch=8)
    b.agent.stop()
    calls = len(b.channel.calls)
    b.channel.cancel_consumer(next(iter(b.channel.consumers)))
    assert len(b.channel.calls) == calls


def _at_tasks_declare(b: Broker) -> None:
    for _ in range(3):  # confirm mode and both exchanges: the tasks queue's declare is waiting
        b.channel.answer()
    assert b.agent._step == f"declaring {NAMES.tasks_queue}"


def test_a_queue_declared_with_other_arguments_is_fatal_and_says_how_to_fix_it():
    """A 406 at declare would come back on every reconnect: the operator must act, and is told how."""
    b = Broker()
    _at_tasks_declare(b)
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.PRECONDITION_FAILED,
                                                     "inequivalent arg 'x-max-length' for queue"))
    name, message = b.daemon.events[-1]
    assert name == "on_fatal"
    assert "compute-endpoint migrate-queues" in message and "inequivalent arg" in message


def _on_rabbitmq(version: str, queue_type: str = "auto") -> Broker:
    """An agent whose connection opened to a node of this RabbitMQ version."""
    b = Broker()
    b.agent.queues.settings = QueueSettings(queue_type, delivery_limit=4)
    b.connection.server_properties = {"version": version.encode(), "cluster_name": b"rabbit@q1"}
    b.agent._on_connection_open(b.connection)
    b.channel = b.open_channel()
    return b


def _declared_arguments(b: Broker) -> dict[str, dict]:
    return {c.args[0]: c.kwargs["arguments"] for c in b.channel.calls
            if c.name == "queue_declare" and not c.kwargs.get("passive")}


def test_on_rabbitmq_3_10_every_queue_is_a_quorum_queue_and_tasks_have_a_delivery_limit_into_the_dead_letters():
    b = _on_rabbitmq("3.10.8")
    b.channel.answer_all()
    args = _declared_arguments(b)
    assert {queue: a["x-queue-type"] for queue, a in args.items()} == dict.fromkeys(
        [NAMES.tasks_queue, NAMES.commands_queue, NAMES.status_queue, NAMES.dead_queue], "quorum")
    assert args[NAMES.tasks_queue] == {"x-queue-type": "quorum", "x-delivery-limit": 4, "x-dead-letter-exchange":
                                       "ce.tasks", "x-dead-letter-routing-key": NAMES.dead_key}
    assert args[NAMES.commands_queue]["x-message-ttl"] and args[NAMES.status_queue]["x-max-length"] == 1
    assert b.agent.describe()["queue_types"] == dict.fromkeys(["tasks", "commands", "status", "dead"], "quorum")
    assert b.agent.describe()["cluster"] == "rabbit@q1" and b.agent.ready


def test_an_older_broker_or_queue_type_classic_gets_classic_queues_as_before():
    for b in (_on_rabbitmq("3.8.9"), _on_rabbitmq("3.12.0", queue_type="classic")):
        b.channel.answer_all()
        assert not any("x-queue-type" in a for a in _declared_arguments(b).values())
        assert b.agent.ready


def test_queue_type_quorum_on_a_broker_without_them_is_fatal_and_names_the_version():
    b = Broker()
    b.agent.queues.settings = QueueSettings("quorum")
    b.connection.server_properties = {"version": b"3.8.9"}
    b.agent._on_connection_open(b.connection)
    name, message = b.daemon.events[-1]
    assert name == "on_fatal" and "3.8.9" in message and "broker.queue_type: auto" in message


def test_under_auto_a_queue_that_exists_as_a_classic_queue_is_kept_and_the_declarations_start_again():
    """An endpoint upgraded in place keeps serving from its classic queues: nothing in them is lost."""
    b = _on_rabbitmq("3.10.8")
    _at_tasks_declare(b)
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.PRECONDITION_FAILED,
                                                     "inequivalent arg 'x-queue-type' for queue"))
    assert "on_fatal" not in b.daemon.names() and b.connection.channels_opened == 2  # (the first by the open)
    b.channel = b.open_channel()
    b.channel.answer_all()
    args = _declared_arguments(b)
    assert args[NAMES.tasks_queue] == {} and args[NAMES.dead_queue]["x-queue-type"] == "quorum"
    assert b.agent.describe()["queue_types"]["tasks"] == "classic" and b.agent.ready


def test_a_publish_the_broker_refuses_is_told_why_and_the_agent_reconnects():
    b = Broker().declared()
    outcomes = b.publish()
    seen = []
    b.agent._confirms.reset()  # (the publish above is re-registered below with a callback that reads the reason)
    b.agent._confirms.published(lambda ok: seen.append((ok, b.agent.last_refusal)))
    b.channel.closed_by_broker(ChannelClosedByBroker(ReplyCode.PRECONDITION_FAILED,
                                                     "message size 200 is larger than configured max size 100"))
    assert seen == [(False, "message size 200 is larger than configured max size 100")]
    assert b.agent.last_refusal is None and outcomes == []
    assert all(name != "on_fatal" for name, *_ in b.daemon.events), "not fatal: the outbox deals with it"


def test_the_prefetch_is_capped_at_what_amqp_can_carry():
    b = Broker().declared(prefetch=2 * 300 * 128)
    assert b.channel.last("basic_qos").kwargs["prefetch_count"] == 65_535 == b.agent.prefetch


def test_a_second_consumer_of_the_commands_on_first_connect_is_another_daemon_and_fatal():
    """Quorum queues ignore exclusive consumers: the count is how a second login node's daemon is found."""
    b = Broker()
    b.channel.consumer_count = 2
    b.channel.answer_all()
    name, message = b.daemon.events[-1]
    assert name == "on_fatal" and "another daemon of this endpoint is already taking its tasks" in message
    assert "2 consumers of" in message and not b.agent.ready


def test_after_a_reconnect_no_count_is_taken_our_old_consumer_may_linger():
    b = Broker().declared()
    b.agent.was_ready = True
    b.channel = b.open_channel()
    b.channel.consumer_count = 2
    b.channel.answer_all()
    assert b.agent.ready and "on_fatal" not in b.daemon.names()

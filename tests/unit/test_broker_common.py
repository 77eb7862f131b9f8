"""What the daemon and the SDK share about the broker: back-off, confirms, errors."""

import pika
import pytest
from pika.exceptions import ProbableAuthenticationError

from compute_endpoint.broker import (
    Backoff,
    ConfirmTracker,
    NodeRotation,
    broker_urls,
    describe_connection_error,
    supports_quorum,
)

from ..support.fakes import confirm_frame


def test_reconnect_delays_double_up_to_thirty_seconds_each_drawn_between_half_and_all_of_its_step():
    low, high = Backoff(rng=lambda: 0.0), Backoff(rng=lambda: 0.999999)
    lows = [round(low.next_delay(), 2) for _ in range(9)]
    highs = [round(high.next_delay(), 2) for _ in range(9)]
    assert highs == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert lows == [0.25, 0.5, 1, 2, 4, 8, 15, 15, 15]
    low.reset()
    assert low.next_delay() == 0.25, "a successful connection starts the ladder again"


def test_jitter_spreads_clients_that_lost_the_broker_together():
    delays = {round(Backoff().next_delay(), 3) for _ in range(50)}
    assert len(delays) > 10


def test_a_multiple_confirm_settles_a_prefix_in_publish_order():
    tracker: ConfirmTracker[str] = ConfirmTracker()
    for value in "abcd":
        tracker.published(value)
    assert tracker.confirmed(confirm_frame(2)) == (True, ["b"])
    assert tracker.confirmed(confirm_frame(3, multiple=True)) == (True, ["a", "c"])
    assert tracker.confirmed(confirm_frame(3)) == (True, []), "a confirm repeated settles nothing twice"
    assert tracker.confirmed(confirm_frame(4, ack=False)) == (False, ["d"])
    assert len(tracker) == 0


def test_a_lost_channel_returns_what_was_unsettled_and_numbering_starts_again():
    tracker: ConfirmTracker[str] = ConfirmTracker()
    tracker.published("a")
    tracker.published("b")
    assert tracker.reset() == ["a", "b"]
    assert tracker.published("c") == 1


@pytest.mark.parametrize("error, fatal, text", [
    (ProbableAuthenticationError("ACCESS_REFUSED - Login was refused"), True, "refused the credentials of identity"),
    (ConnectionRefusedError(111, "Connection refused"), False, "cannot reach the broker at 127.0.0.1:5672"),
])
def test_a_failed_connection_is_described_for_the_user(error, fatal, text):
    failure = describe_connection_error(error, pika.URLParameters("amqp://127.0.0.1:5672/%2F"), "alice")
    assert failure.fatal is fatal and text in failure.message


def _nodes(*ports: int) -> list[pika.URLParameters]:
    return [pika.URLParameters(f"amqp://127.0.0.1:{port}/%2F") for port in ports]


def test_the_nodes_of_a_cluster_are_tried_in_turn_and_the_back_off_comes_only_after_a_whole_round():
    rotation = NodeRotation(_nodes(1, 2, 3), Backoff(rng=lambda: 0.0))
    tried, delays = [], []
    for _ in range(6):
        tried.append(rotation.take().port)
        delays.append(rotation.failed())
    assert tried == [1, 2, 3, 1, 2, 3]
    assert delays == [0, 0, 0.25, 0, 0, 0.5], "a node that is down costs one attempt, not a back-off"


def test_a_lost_connection_moves_to_the_next_node_at_once_and_spreads_clients_with_jitter():
    rotation = NodeRotation(_nodes(1, 2, 3), Backoff(rng=lambda: 0.0))
    assert rotation.take().port == 1
    rotation.connected()
    assert 0 < rotation.lost() <= Backoff().first
    assert rotation.take().port == 2
    assert rotation.failed() == 0 and rotation.take().port == 3
    assert rotation.failed() > 0, "the lost node and both others have failed: back off"


def test_a_single_broker_keeps_the_plain_back_off():
    rotation = NodeRotation(_nodes(1), Backoff(rng=lambda: 0.0))
    rotation.take()
    assert [rotation.failed() for _ in range(3)] == [0.25, 0.5, 1]
    rotation.connected()
    assert rotation.lost() == 0.25


@pytest.mark.parametrize(("value", "urls"), [
    ("amqp://a:1/%2F", ["amqp://a:1/%2F"]),
    ("amqp://a:1/%2F, amqp://b:2/%2F,", ["amqp://a:1/%2F", "amqp://b:2/%2F"]),
    (["amqps://a/%2F", " amqps://b/%2F "], ["amqps://a/%2F", "amqps://b/%2F"]),
])
def test_broker_urls_are_a_list_or_a_string_separated_by_commas(value, urls):
    assert broker_urls(value) == urls


@pytest.mark.parametrize(("version", "quorum"), [("3.10.8", True), ("3.13.7", True), ("4.0.5", True),
                                                 ("3.9.29", False), ("3.8.0", False), ("", False), ("x", False)])
def test_quorum_queues_are_used_from_rabbitmq_3_10(version, quorum):
    assert supports_quorum(version) is quorum


def test_the_oldest_unconfirmed_publish_is_timed_so_a_lost_confirm_can_be_noticed(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("compute_endpoint.broker.time.monotonic", lambda: clock[0])
    tracker: ConfirmTracker[str] = ConfirmTracker()
    assert tracker.oldest_wait() == 0
    tracker.published("a")
    clock[0] = 107.0
    tracker.published("b")
    clock[0] = 110.0
    assert tracker.oldest_wait() == 10
    tracker.confirmed(confirm_frame(1, multiple=False))
    assert tracker.oldest_wait() == 3
    tracker.reset()
    assert tracker.oldest_wait() == 0


def test_a_channel_is_given_up_when_a_confirm_is_overdue_or_one_destination_keeps_refusing(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("compute_endpoint.broker.time.monotonic", lambda: clock[0])
    tracker: ConfirmTracker[str] = ConfirmTracker()
    tracker.published("a", "ce.results k1")
    clock[0] = 131.0
    assert tracker.stuck() == "has not confirmed a publish for 31 s"
    tracker.confirmed(confirm_frame(1, ack=False))
    assert tracker.stuck() is None, "one refusal is an election, not a stuck channel"
    for seq in (2, 3):
        tracker.published("again", "ce.results k1")
        tracker.published("other", "ce.tasks k2")
        clock[0] += 3
        tracker.confirmed(confirm_frame(2 * seq - 2, ack=False))
        tracker.confirmed(confirm_frame(2 * seq - 1))
    assert tracker.stuck() == "has refused 3 publishes to ce.results k1 in 6 s, none taken", \
        "other destinations' successes do not hide it"
    tracker.published("taken", "ce.results k1")
    tracker.confirmed(confirm_frame(6))
    assert tracker.stuck() is None, "one success ends the streak"
    tracker.published("b", "ce.results k1")
    for seq in (7, 8, 9):
        tracker.published("b", "ce.results k1")
        clock[0] += 3
        tracker.confirmed(confirm_frame(seq, ack=False))
    assert tracker.stuck()
    tracker.reset()
    assert tracker.stuck() is None, "a new channel starts with a clean slate"

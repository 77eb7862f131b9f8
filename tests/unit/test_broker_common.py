"""What the daemon and the SDK share about the broker: back-off, confirms, errors."""

import pika
import pytest
from pika.exceptions import ProbableAuthenticationError

from compute_endpoint.broker import Backoff, ConfirmTracker, describe_connection_error

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

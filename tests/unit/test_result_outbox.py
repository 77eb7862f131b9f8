"""The endpoint's result outbox: when results go to the broker, and that none is acked before its confirm."""

from dataclasses import dataclass, field

import pytest

from compute_endpoint.endpoint import publisher
from compute_endpoint.endpoint.inflight import InflightTask
from compute_endpoint.endpoint.publisher import ResultOutbox
from compute_endpoint.protocol import Result, unbundle

from ..support.fakes import FakeLoop


@dataclass
class Publish:
    routing_key: str
    task_ids: list[str]
    message_id: str
    settle: object
    body: bytes = b""


@dataclass
class FakeAgent:
    connected: bool = True
    published: list[Publish] = field(default_factory=list)
    last_refusal: str | None = None

    def publish(self, exchange, routing_key, body, properties, on_confirm=None, mandatory=True) -> bool:
        if not self.connected:
            return False
        task_ids = [Result.unpack(item).task_id for item in unbundle(body)]
        self.published.append(Publish(routing_key, task_ids, properties.message_id, on_confirm, body))
        return True

    def confirm(self, index: int = 0, ok: bool = True) -> None:
        self.published[index].settle(ok)

    def refuse(self, index: int, why: str) -> None:
        """The broker closes the channel over this publish, as RabbitMQ does with a 406 for a message too large."""
        self.last_refusal = why
        self.published[index].settle(False)
        self.last_refusal = None


class Harness:
    def __init__(self, backlog: bool = False):
        self.loop = FakeLoop()
        self.agent = FakeAgent()
        self.backlog = backlog
        self.confirmed: list[str] = []
        self.undeliverable: list[tuple[str, str]] = []
        self.outbox = ResultOutbox(self.agent, self.loop, lambda: self.backlog,
                                   lambda entries: self.confirmed.extend(e.task_id for e in entries),
                                   lambda entry, why: self.undeliverable.append((entry.task_id, why)),
                                   clock=self.loop.clock)

    def results(self, *task_ids: str, reply_to: str = "alice.s1", size: int = 0) -> list[InflightTask]:
        return [InflightTask(tid, b"", reply_to, 0.0, [], Result(task_id=tid, ok=True, payload=b"x" * size).pack())
                for tid in task_ids]

    def sent(self) -> list[list[str]]:
        return [p.task_ids for p in self.agent.published]


def test_without_a_backlog_a_result_goes_at_once():
    h = Harness()
    h.outbox.add(h.results("a"))
    assert h.sent() == [["a"]]
    assert h.agent.published[0].message_id == "a"


def test_a_result_counts_as_done_only_once_the_broker_confirms_it():
    h = Harness()
    h.outbox.add(h.results("a"))
    assert h.confirmed == [], "nothing is handed back for acking before the confirm"
    h.agent.confirm(0)
    assert h.confirmed == ["a"] and len(h.outbox) == 0


def test_while_a_publish_awaits_its_confirm_further_results_wait_and_then_go_together():
    h = Harness()
    h.outbox.add(h.results("a"))
    h.outbox.add(h.results("b"))
    h.outbox.add(h.results("c"))
    assert h.sent() == [["a"]]
    h.agent.confirm(0)
    h.loop.advance()
    assert h.sent() == [["a"], ["b", "c"]]
    assert h.agent.published[1].message_id == "bundle:b"


def test_under_a_backlog_results_linger_briefly_to_travel_together():
    h = Harness(backlog=True)
    h.outbox.add(h.results("a"))
    h.loop.advance(publisher.LINGER / 2)
    h.outbox.add(h.results("b"))
    assert h.sent() == []
    h.loop.advance(publisher.LINGER / 2)
    assert h.sent() == [["a", "b"]], "no longer than LINGER after the first arrived"


def test_under_a_backlog_a_full_bundle_goes_without_lingering():
    h = Harness(backlog=True)
    h.outbox.add(h.results(*[f"t{i}" for i in range(publisher.BUNDLE_ITEMS)]))
    assert len(h.sent()) == 1 and len(h.sent()[0]) == publisher.BUNDLE_ITEMS


def test_each_submitter_gets_its_own_messages_within_the_bundle_limits():
    h = Harness()
    h.outbox.send_now(h.results("a1", "a2", reply_to="alice.s1") + h.results("b1", reply_to="bob.s2"))
    assert {p.routing_key: p.task_ids for p in h.agent.published} == {"alice.s1": ["a1", "a2"], "bob.s2": ["b1"]}
    big = publisher.BUNDLE_BYTES // 2
    h.outbox.send_now(h.results("x", "y", "z", size=big))
    assert h.sent()[-3:] == [["x"], ["y"], ["z"]], "no message over BUNDLE_BYTES"


def test_a_refused_publish_goes_again_after_a_pause_not_at_once():
    h = Harness()
    h.outbox.add(h.results("a"))
    h.agent.confirm(0, ok=False)
    h.loop.advance()
    assert h.sent() == [["a"]], "not republished in a tight loop"
    assert h.confirmed == []
    h.loop.advance(publisher.RETRY_DELAY)
    assert h.sent() == [["a"], ["a"]]
    h.agent.confirm(1)
    assert h.confirmed == ["a"]


def test_results_lost_with_the_channel_wait_for_it_and_go_once_it_is_back():
    h = Harness()
    h.outbox.add(h.results("a"))
    h.agent.connected = False
    h.agent.confirm(0, ok=False)  # the agent calls back False for every unconfirmed publish on a lost channel
    h.outbox.add(h.results("b"))
    h.loop.advance(10 * publisher.RETRY_DELAY)
    assert h.sent() == [["a"]] and len(h.outbox) == 2
    h.agent.connected = True
    h.outbox.resume()
    assert sorted(h.sent()[1]) == ["a", "b"]
    h.agent.confirm(1)
    assert sorted(h.confirmed) == ["a", "b"]


@pytest.mark.parametrize("ok", [True, False])
def test_every_result_is_in_exactly_one_place(ok):
    h = Harness(backlog=True)
    h.outbox.add(h.results("a", "b", "c"))
    h.loop.advance(publisher.LINGER)
    h.outbox.add(h.results("d"))
    in_flight = [tid for p in h.agent.published for tid in p.task_ids]
    assert sorted(in_flight) + ["d"] == ["a", "b", "c", "d"] and len(h.outbox) == 1
    h.agent.confirm(0, ok=ok)
    h.loop.advance(publisher.RETRY_DELAY)
    everything = h.confirmed + [tid for p in h.agent.published[1:] for tid in p.task_ids]
    assert sorted(everything) == ["a", "b", "c", "d"]


def test_a_result_the_broker_refuses_is_replaced_by_a_failure_then_set_aside_and_no_other_suffers():
    """A result over the broker's max_message_size would otherwise come back after every reconnect, forever; and
    the broker's channel close fails every publish in flight, innocent ones included."""
    h = Harness()
    why = "PRECONDITION_FAILED - message size 200 is larger than configured max size 100"
    h.outbox.add(h.results("poison", "a"))
    h.outbox.add(h.results("b", reply_to="bob.s2"))  # in flight beside it when the channel closes
    settled: set[int] = set()
    bodies: list[Result] = []
    for _ in range(40):
        open_publishes = [i for i in range(len(h.sent())) if i not in settled]
        if not open_publishes:
            h.loop.advance(publisher.RETRY_DELAY)
            continue
        if len(settled) > 1:
            assert len(open_publishes) == 1, "since the refusal, one result at a time"
        for index in open_publishes:
            settled.add(index)
            if "poison" in h.sent()[index]:
                if h.sent()[index] == ["poison"]:
                    bodies.append(Result.unpack(h.agent.published[index].body))
                h.agent.refuse(index, why)
            else:
                h.agent.confirm(index)
    assert sorted(h.confirmed) == ["a", "b"], "the others got through, each once"
    assert h.undeliverable == [("poison", why)], "refused even as a failure: to the dead-letter queue"
    kinds = [r.error_kind for r in bodies]
    assert kinds[0] is None and "undeliverable" in kinds and len(bodies) == 2 * publisher.MAX_REFUSALS - 1
    failure = bodies[kinds.index("undeliverable")].error_message
    assert f"refused its result {publisher.MAX_REFUSALS} times" in failure and why in failure
    published = len(h.sent())
    h.loop.advance(100 * publisher.RETRY_DELAY)
    assert len(h.sent()) == published and len(h.outbox) == 0, "and nothing goes round again"

"""The endpoint's ledger of tasks between "received" and "result confirmed"."""

import pika

from compute_endpoint.endpoint import inflight
from compute_endpoint.endpoint.amqp import Delivery
from compute_endpoint.endpoint.inflight import DeliveryGroup, InflightLedger, Receipt


def delivery(tag: int) -> Delivery:
    return Delivery(tag=tag, epoch=1, redelivered=False, properties=pika.BasicProperties(), body=b"")


def test_a_bundles_delivery_is_complete_only_when_every_task_in_it_is_finished():
    ledger = InflightLedger()
    group = DeliveryGroup(delivery(1), pending=3)
    for tid in ("a", "b", "c"):
        assert ledger.receive(tid, b"", "alice.s", group) == Receipt.NEW
    assert ledger.finish("a") == [] and ledger.finish("c") == []
    assert ledger.finish("b") == [group]
    assert len(ledger) == 0 and ledger.completed == 3


def test_a_redelivered_task_waits_for_the_result_already_coming_and_both_deliveries_complete():
    ledger = InflightLedger()
    first, again = DeliveryGroup(delivery(1), 1), DeliveryGroup(delivery(2), 1)
    assert ledger.receive("a", b"body", "alice.s", first) == Receipt.NEW
    assert ledger.receive("a", b"body", "alice.s", again) == Receipt.DUPLICATE
    assert len(ledger) == 1, "it does not run twice"
    assert ledger.finish("a") == [first, again]


def test_a_redelivery_of_a_task_finished_moments_ago_counts_as_done_at_once():
    ledger = InflightLedger()
    ledger.receive("a", b"", "alice.s", DeliveryGroup(delivery(1), 1))
    ledger.finish("a")
    late = DeliveryGroup(delivery(2), 2)
    assert ledger.receive("a", b"", "alice.s", late) == Receipt.FINISHED
    assert late.pending == 1 and len(ledger) == 0


def test_the_memory_of_finished_tasks_is_bounded(monkeypatch):
    monkeypatch.setattr(inflight, "RECENTLY_FINISHED", 3)
    ledger = InflightLedger()
    for i in range(5):
        ledger.receive(f"t{i}", b"", "alice.s", DeliveryGroup(delivery(i), 1))
        ledger.finish(f"t{i}")
    assert ledger.receive("t0", b"", "alice.s", DeliveryGroup(delivery(9), 1)) == Receipt.NEW
    assert ledger.receive("t4", b"", "alice.s", DeliveryGroup(delivery(9), 1)) == Receipt.FINISHED


def test_only_tasks_without_a_result_are_resent_to_a_new_interchange():
    ledger = InflightLedger()
    for tid in ("a", "b"):
        ledger.receive(tid, tid.encode(), "alice.s", DeliveryGroup(delivery(1), 2))
    ledger.get("a").result = b"done"
    assert [t.task_id for t in ledger.awaiting_result()] == ["b"]

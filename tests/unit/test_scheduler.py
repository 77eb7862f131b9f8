"""The interchange's scheduling policy, exercised without sockets."""

from compute_endpoint.interchange.manager_record import ManagerRecord
from compute_endpoint.interchange.scheduler import Scheduler


def manager(name: str, workers: int = 2, types=("RAW",)) -> ManagerRecord:
    return ManagerRecord(manager_id=name, workers=workers, container_types=tuple(types))


def submit(s: Scheduler, *ids, ctype="RAW"):
    for tid in ids:
        assert s.submit(tid, f"data-{tid}".encode(), ctype)


def assigned(plan) -> dict[str, list[str]]:
    return {rec.manager_id: [e.task_id for e in entries] for rec, entries in plan}


def test_tasks_fill_free_slots_and_wait_for_more():
    s = Scheduler(max_retries=1)
    s.add_manager(manager("m1", workers=2), [])
    submit(s, "a", "b", "c")
    assert assigned(s.dispatch()) == {"m1": ["a", "b"]}
    assert s.queued() == 1 and s.running() == 2
    assert s.dispatch() == []
    assert s.complete("a", system_failure=False) == "forward"
    assert assigned(s.dispatch()) == {"m1": ["c"]}


def test_resubmitting_a_held_task_is_ignored():
    s = Scheduler(max_retries=1)
    submit(s, "a")
    assert not s.submit("a", b"again")
    assert s.queued() == 1


def test_load_spreads_round_robin():
    s = Scheduler(max_retries=0)
    for name in ("m1", "m2", "m3"):
        s.add_manager(manager(name, workers=1), [])
    submit(s, "a", "b", "c")
    plan = assigned(s.dispatch())
    assert sorted(len(v) for v in plan.values()) == [1, 1, 1]


def test_hard_routing_sends_tasks_only_to_managers_of_their_container_type():
    s = Scheduler(max_retries=0)
    s.add_manager(manager("raw", types=("RAW",)), [])
    s.add_manager(manager("gpu", types=("tensorflow",)), [])
    submit(s, "t1", "t2", ctype="tensorflow")
    submit(s, "r1")
    plan = assigned(s.dispatch())
    assert plan == {"gpu": ["t1", "t2"], "raw": ["r1"]}


def test_worker_death_is_retried_then_forwarded():
    s = Scheduler(max_retries=1)
    s.add_manager(manager("m1"), [])
    submit(s, "a")
    s.dispatch()
    assert s.complete("a", system_failure=True) == "retry"
    assert assigned(s.dispatch()) == {"m1": ["a"]}
    assert s.complete("a", system_failure=True) == "forward"
    assert "a" not in s.tasks


def test_a_lost_managers_tasks_are_requeued_then_failed_when_retries_run_out():
    s = Scheduler(max_retries=1)
    s.add_manager(manager("m1"), [])
    s.add_manager(manager("m2"), [])
    submit(s, "a", "b", "c", "d")
    plan = assigned(s.dispatch())
    lost_tasks = plan["m1"]
    assert s.remove_manager("m1", "gone") == []
    assert s.queued() == 2
    s.add_manager(manager("m3"), [])
    plan = assigned(s.dispatch())
    assert sorted(plan["m3"]) == sorted(lost_tasks)
    lost = s.remove_manager("m3", "gone again")
    assert sorted(item.entry.task_id for item in lost) == sorted(lost_tasks)
    assert all(item.reason == "gone again" for item in lost)


def test_a_reregistering_manager_keeps_the_tasks_it_holds():
    s = Scheduler(max_retries=1)
    s.add_manager(manager("m1"), [])
    submit(s, "a", "b")
    s.dispatch()
    # same id registers again (interchange view restarted or link healed), still holding "a" only
    lost = s.add_manager(manager("m1"), ["a"])
    assert lost == []
    assert s.tasks["a"].manager == "m1"
    assert s.tasks["b"].manager is None and s.queued() == 1


def test_a_manager_registering_again_keeps_the_tasks_still_on_their_way_to_it():
    """After a partition heals, a manager may register several times in a row (once per
    buffered heartbeat the interchange answered with "register"); a batch sent between
    two of those registrations has not reached it yet, and is not lost."""
    s = Scheduler(max_retries=0)
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1"), [])
    submit(s, "a", "b")
    s.dispatch()  # batch 1, still in flight
    lost = s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1", batch_seq=0), [])
    assert lost == []
    assert s.tasks["a"].manager == "m1" and s.tasks["a"].attempts == 1
    assert s.managers["m1"].batch_seq == 1, "the next batch gets a new number"
    assert assigned(s.dispatch()) == {}


def test_a_manager_registering_again_gets_back_tasks_lost_in_transit_without_losing_a_retry():
    s = Scheduler(max_retries=0)
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1"), [])
    submit(s, "a", "b")
    s.dispatch()  # batch 1
    lost = s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1", batch_seq=1), ["a"])
    assert lost == []
    assert s.tasks["b"].manager is None and s.tasks["b"].attempts == 0
    assert assigned(s.dispatch()) == {"m1": ["b"]}


def test_a_draining_manager_asked_to_register_again_stays_draining():
    s = Scheduler(max_retries=0)
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1"), [])
    s.set_draining("m1")
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1"), [])
    submit(s, "a")
    assert s.dispatch() == [], "it gets no new task"


def test_a_task_known_only_from_a_manager_that_then_lost_it_runs_once_its_bytes_are_resent():
    s = Scheduler(max_retries=1)
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1"), ["x"])  # after an interchange restart
    assert s.reconcile("m1", known_tasks=[], last_batch=0) == 1  # ... the manager no longer holds it
    assert s.dispatch() == [], "nothing to send without its bytes"
    assert not s.submit("x", b"payload")  # the endpoint's resend
    assert assigned(s.dispatch()) == {"m1": ["x"]}


def test_a_restarted_manager_loses_the_tasks_it_does_not_declare():
    s = Scheduler(max_retries=0)
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p1"), [])
    submit(s, "a", "b")
    s.dispatch()
    lost = s.add_manager(ManagerRecord(manager_id="m1", workers=2, incarnation="p2"), ["a"])
    assert [item.entry.task_id for item in lost] == ["b"]
    assert lost[0].reason == "the manager restarted while running it"
    assert s.tasks["a"].manager == "m1"


def test_tasks_a_new_interchange_learns_from_managers_are_adopted():
    s = Scheduler(max_retries=1)
    s.add_manager(manager("m1"), ["x"])  # the endpoint has not resent "x" yet
    assert s.tasks["x"].manager == "m1" and s.tasks["x"].data is None
    assert not s.submit("x", b"payload")  # the resend fills in the data, does not queue it twice
    assert s.tasks["x"].data == b"payload" and s.queued() == 0


def test_reconcile_requeues_tasks_a_manager_never_received():
    s = Scheduler(max_retries=0)
    s.add_manager(manager("m1"), [])
    submit(s, "a", "b")
    s.dispatch()
    batch = s.managers["m1"].batch_seq
    assert s.reconcile("m1", known_tasks=["a"], last_batch=batch - 1) == 0  # batch not seen yet: wait
    assert s.reconcile("m1", known_tasks=["a"], last_batch=batch) == 1
    assert s.tasks["b"].attempts == 0, "a task lost in transit never ran; it keeps its retries"
    assert assigned(s.dispatch()) == {"m1": ["b"]}


def test_scheduling_cost_does_not_depend_on_idle_managers():
    s = Scheduler(max_retries=0)
    for i in range(2000):
        s.add_manager(manager(f"m{i}", workers=100), [])
    submit(s, *[f"t{i}" for i in range(10)])
    plan = s.dispatch()
    assert sum(len(entries) for _, entries in plan) == 10


def test_a_result_for_a_queued_resend_drops_the_queued_copy():
    """After an interchange restart: the endpoint resends a task that a manager (not yet registered
    again) already ran; its result arrives while the resend is still queued."""
    s = Scheduler(max_retries=1)
    submit(s, "a", "b")
    assert s.complete("a", system_failure=False) == "forward"
    assert s.queued() == 1 and "a" not in s.tasks
    s.add_manager(manager("m1"), [])
    assert assigned(s.dispatch()) == {"m1": ["b"]}, "the finished task is not sent again"


def test_a_worker_death_reported_for_a_queued_resend_does_not_queue_it_twice():
    s = Scheduler(max_retries=1)
    submit(s, "a")
    s.tasks["a"].attempts = 1
    assert s.complete("a", system_failure=True) == "retry"
    assert s.queued() == 1
    s.add_manager(manager("m1"), [])
    assert assigned(s.dispatch()) == {"m1": ["a"]}
    assert s.dispatch() == []


def test_idle_workers_anywhere_come_before_queue_slots():
    s = Scheduler(max_retries=0)
    s.add_manager(ManagerRecord(manager_id="m1", workers=2, prefetch=2), [])
    s.add_manager(ManagerRecord(manager_id="m2", workers=2, prefetch=2), [])
    submit(s, "a", "b", "c", "d")
    plan = assigned(s.dispatch())
    assert sorted(len(tasks) for tasks in plan.values()) == [2, 2], "every worker busy before any queueing"
    submit(s, "e", "f")
    plan = assigned(s.dispatch())
    assert sorted(len(tasks) for tasks in plan.values()) == [1, 1], "then queue slots, spread round-robin"
    submit(s, "g", "h", "i")
    assert sum(len(tasks) for tasks in assigned(s.dispatch()).values()) == 2, "no more than the slots"
    s.complete("a", system_failure=False)
    plan = assigned(s.dispatch())
    assert plan == {s.tasks["i"].manager: ["i"]}

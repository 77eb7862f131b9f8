"""Hard and soft routing of container types, with synthetic manager offers."""

import random
from collections import deque

import pytest

from compute_endpoint.interchange.manager_record import ManagerRecord
from compute_endpoint.interchange.routing import HARD, RANDOM, SOFT, Decision, Offer, Placement, Router, route
from compute_endpoint.interchange.scheduler import Scheduler
from compute_endpoint.protocol import Heartbeat

PY = "podman:localhost/py:1"
ML = "podman:localhost/ml:2"
CH = "charliecloud:/images/hpc"


def offers(*specs: Offer) -> list[Offer]:
    return list(specs)


def test_a_warm_idle_worker_of_the_tasks_type_wins_over_unused_slots():
    router = Router(SOFT, random.Random(1))
    pool = offers(Offer("empty", unused=4, runtimes=frozenset({"podman"})),
                  Offer("warm", warm_idle={PY: 1}, runtimes=frozenset({"podman"})))
    decision = router.place(PY, pool)
    assert (decision.manager_id, decision.placement) == ("warm", Placement.WARM)
    assert pool[1].warm_idle[PY] == 0  # counted down until the manager says more


def test_without_a_warm_worker_a_random_manager_with_an_unused_slot_starts_one():
    chosen = set()
    for seed in range(20):
        pool = offers(*(Offer(f"m{n}", unused=1, runtimes=frozenset({"podman"})) for n in range(3)))
        decision = Router(SOFT, random.Random(seed)).place(PY, pool)
        assert decision.placement == Placement.COLD
        chosen.add(decision.manager_id)
    assert chosen == {"m0", "m1", "m2"}, "the manager is chosen at random"


def test_with_no_unused_slot_an_idle_worker_of_another_type_is_replaced():
    pool = offers(Offer("busy", runtimes=frozenset({"podman"})),
                  Offer("ml-idle", warm_idle={ML: 2}, runtimes=frozenset({"podman"})))
    decision = Router(SOFT).place(PY, pool)
    assert decision == type(decision)("ml-idle", Placement.REPLACE, evicts=ML)
    assert pool[1].warm_idle[ML] == 1


def test_the_idle_worker_replaced_is_of_the_type_whose_tasks_came_longest_ago():
    podman = frozenset({"podman", "charliecloud"})
    for seed in range(10):
        router = Router(SOFT, random.Random(seed))
        router.place(ML, offers(Offer("a", unused=1, runtimes=podman)))  # ML's last task, then CH's
        router.place(CH, offers(Offer("b", unused=1, runtimes=podman)))
        pool = offers(Offer("a", warm_idle={ML: 1}, runtimes=podman), Offer("b", warm_idle={CH: 1}, runtimes=podman))
        assert router.place(PY, pool) == Decision("a", Placement.REPLACE, evicts=ML)


def test_a_manager_without_the_runtime_never_gets_the_task():
    pool = offers(Offer("podman-only", unused=2, runtimes=frozenset({"podman"})))
    assert Router(SOFT).place(CH, pool) is None
    assert Router(SOFT).place("RAW", pool).placement == Placement.COLD  # RAW needs no runtime


def test_hard_routing_sends_a_type_only_to_managers_started_for_it():
    router = Router(HARD)
    pool = offers(Offer("py", warm_idle={PY: 1}, fixed_type=PY), Offer("ml", warm_idle={ML: 3}, fixed_type=ML))
    assert router.place(PY, pool).manager_id == "py"
    assert router.place(PY, pool) is None, "the ML manager's idle workers never run a PY task"
    assert router.place(ML, pool).manager_id == "ml"


def test_a_type_nobody_can_take_does_not_hold_back_another_type():
    queues = {CH: deque(["ch-1", "ch-2"]), PY: deque(["py-1", "py-2"])}
    pool = offers(Offer("m", unused=2, runtimes=frozenset({"podman"})))
    placed = route(Router(SOFT), queues, pool)
    assert [task for task, _ in placed] == ["py-1", "py-2"]
    assert list(queues[CH]) == ["ch-1", "ch-2"], "they wait, in order, for a manager with Charliecloud"


def test_one_types_backlog_does_not_take_every_slot_before_another_types_first_task():
    queues = {PY: deque(f"py-{n}" for n in range(10)), ML: deque(["ml-1"])}
    pool = offers(Offer("m", unused=2, runtimes=frozenset({"podman"})))
    placed = route(Router(SOFT), queues, pool)
    assert sorted(task for task, _ in placed) == ["ml-1", "py-0"]


def test_the_router_counts_warm_hits_and_cold_starts():
    router = Router(SOFT, random.Random(0))
    pool = offers(Offer("m", warm_idle={PY: 1}, unused=1, runtimes=frozenset({"podman"})))
    route(router, {PY: deque(["a", "b"]), ML: deque(["c"])}, pool)
    assert router.counts == {Placement.WARM: 1, Placement.COLD: 1, Placement.REPLACE: 0}


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="expected hard, soft or random"):
        Router("roulette")


# --- the interchange's scheduler with soft routing -------------------------------------------------


def soft_scheduler(*records: ManagerRecord) -> Scheduler:
    s = Scheduler(max_retries=1, router=Router(SOFT, random.Random(3)))
    for record in records:
        s.add_manager(record, [])
    return s


def any_manager(name: str, workers: int = 2) -> ManagerRecord:
    return ManagerRecord(manager_id=name, workers=workers, container_types=("RAW", PY, ML))


def placed(plan) -> dict[str, list[str]]:
    return {rec.manager_id: [e.task_id for e in entries] for rec, entries in plan}


def test_the_scheduler_sends_a_task_where_a_worker_of_its_type_is_warm():
    s = soft_scheduler(any_manager("cold"), any_manager("warm"))
    s.advertise("warm", Heartbeat(sender="warm", warm_containers=[PY]))
    s.submit("t1", b"x", PY)
    assert placed(s.dispatch()) == {"warm": ["t1"]}
    assert s.router.counts[Placement.WARM] == 1


def test_a_finished_task_leaves_a_warm_worker_that_the_next_task_of_its_type_takes():
    s = soft_scheduler(any_manager("m1", workers=1), any_manager("m2", workers=1))
    s.submit("t1", b"x", ML)
    (first,) = placed(s.dispatch())
    assert s.complete("t1", system_failure=False) == "forward"
    s.submit("t2", b"x", ML)
    assert placed(s.dispatch()) == {first: ["t2"]}, "the worker that ran t1 is warm for ML"


def test_no_more_tasks_go_out_than_workers_can_start_now():
    s = soft_scheduler(any_manager("m", workers=2))
    for n in range(5):
        s.submit(f"t{n}", b"x", PY)
    assert placed(s.dispatch()) == {"m": ["t0", "t1"]}
    assert s.dispatch() == [] and s.queued() == 3


def test_a_hard_manager_beside_soft_ones_only_gets_its_type():
    hard = ManagerRecord(manager_id="ml-only", workers=4, container_types=(ML,))
    s = soft_scheduler(hard, any_manager("any", workers=1))
    s.submit("py", b"x", PY)
    s.submit("ml", b"x", ML)
    plan = placed(s.dispatch())
    assert plan["any"] == ["py"] and plan["ml-only"] == ["ml"]


def test_an_advertisement_counts_no_more_workers_than_the_manager_has_nor_types_it_did_not_register():
    s = soft_scheduler(any_manager("m", workers=2))
    s.advertise("m", Heartbeat(sender="m", warm_containers=[PY] * 10_000 + ["podman:never/registered"],
                               busy_containers=["podman:never/registered", ML], cold_starts=-5, warm_hits=7))
    record = s.managers["m"]
    assert record.warm_idle == {PY: 2}
    assert record.containers() == {PY: {"warm": 2, "idle": 2, "busy": 0}, ML: {"warm": 1, "idle": 0, "busy": 1}}
    assert (record.cold_starts, record.warm_hits) == (0, 7)


def test_cold_starts_and_warm_hits_add_up_across_managers_including_those_gone():
    s = soft_scheduler(any_manager("m1"), any_manager("m2"))
    s.advertise("m1", Heartbeat(sender="m1", cold_starts=2, warm_hits=5))
    s.advertise("m2", Heartbeat(sender="m2", cold_starts=1, warm_hits=1))
    s.remove_manager("m1", "gone")
    assert s.container_starts() == {"cold": 3, "warm": 6}


def test_random_routing_ignores_warm_workers_elsewhere():
    picks = set()
    for seed in range(30):
        pool = offers(Offer("warm", warm_idle={PY: 1}, runtimes=frozenset({"podman"})),
                      Offer("empty", unused=1, runtimes=frozenset({"podman"})))
        picks.add(Router("random", random.Random(seed)).place(PY, pool).placement)
    assert picks == {Placement.WARM, Placement.COLD}, "sometimes the empty manager gets it: a cold start"


def test_a_types_own_warm_worker_is_not_taken_by_another_types_replacement_in_the_same_round():
    queues = {ML: deque(["ml-1"]), PY: deque(["py-1"])}  # ML comes first in turn order
    pool = offers(Offer("m", warm_idle={PY: 1}, runtimes=frozenset({"podman"})))
    placed = route(Router(SOFT), queues, pool)
    assert [(task, d.placement) for task, d in placed] == [("py-1", Placement.WARM)]
    assert list(queues[ML]) == ["ml-1"], "ML waits for a worker to free, rather than evict PY's warm one"


def test_a_short_types_few_queued_tasks_wait_for_its_busy_workers_rather_than_evict():
    router = Router(SOFT, random.Random(3))
    podman = frozenset({"podman"})
    assert not router.patient(PY, queued=1, running=1), "nothing known of PY's tasks yet: no waiting"
    router.ran(PY, 0.05)
    assert router.patient(PY, queued=1, running=1)
    assert not router.patient(PY, queued=2, running=1), "more queued than running: another worker pays off"
    queues = {PY: deque(["t1"])}
    assert route(router, queues, [Offer("m", warm_idle={ML: 1}, runtimes=podman)], {PY: 1}) == []
    assert list(queues[PY]) == ["t1"], "it waits for PY's busy worker; ML's idle one stays warm"
    queues[PY].append("t2")
    (placed,) = route(router, queues, [Offer("m", warm_idle={ML: 1}, runtimes=podman)], {PY: 1})
    assert placed[1].placement == Placement.REPLACE


def test_a_type_whose_tasks_run_long_evicts_at_once_and_random_routing_never_waits():
    router = Router(SOFT)
    router.ran(PY, 30.0)
    assert not router.patient(PY, queued=1, running=1), "a 30 s task: a cold start beats waiting for it"
    baseline = Router(RANDOM)
    baseline.ran(PY, 0.05)
    assert not baseline.patient(PY, queued=1, running=1)


def test_a_heartbeat_older_than_the_last_batch_sent_does_not_undo_the_interchanges_count():
    s = soft_scheduler(any_manager("m", workers=1))
    s.advertise("m", Heartbeat(sender="m", warm_containers=[PY]))
    s.submit("t1", b"x", ML)  # replaces the idle PY worker
    assert placed(s.dispatch()) == {"m": ["t1"]}
    s.complete("t1", system_failure=False)  # now an idle ML worker
    s.advertise("m", Heartbeat(sender="m", warm_containers=[PY], last_batch=0))  # sent before t1 reached it
    assert s.managers["m"].warm_idle == {PY: 0, ML: 1}
    s.advertise("m", Heartbeat(sender="m", warm_containers=[ML], last_batch=1))
    assert s.managers["m"].warm_idle == {ML: 1}

"""Hard and soft routing of container types, with synthetic manager offers."""

import random
from collections import deque

import pytest

from compute_endpoint.interchange.routing import HARD, SOFT, Offer, Placement, Router, route

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
    with pytest.raises(ValueError, match="expected hard or soft"):
        Router("random")

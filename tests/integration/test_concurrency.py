"""Every worker takes part: tasks run side by side up to the endpoint's capacity.

Shown without timing: each task marks its arrival and waits until all of them
have arrived, which only happens if they run at the same time.
"""

from ..support.broker import wait_for


def rendezvous(directory: str, me: int, count: int, patience: float = 60.0) -> bool:
    import os
    import time
    from pathlib import Path

    Path(directory, str(me)).touch()
    deadline = time.time() + patience
    while len(os.listdir(directory)) < count:
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_both_workers_of_a_manager_run_tasks_at_once(endpoint, tmp_path):
    with endpoint.executor() as ex:
        futures = [ex.submit(rendezvous, str(tmp_path), i, 2) for i in range(2)]
        assert [f.result(timeout=120) for f in futures] == [True, True]


def test_capacity_added_by_a_second_manager_is_used(endpoint_factory, tmp_path):
    """Capacity grows from 2 to 4 as the second manager registers; the endpoint's prefetch follows."""
    ep = endpoint_factory(config={"engine": {"provider": {"init_blocks": 2, "min_blocks": 2, "max_blocks": 2}}})
    wait_for(lambda: ep.status()["workers"] == 4, what="four workers")
    with ep.executor() as ex:
        futures = [ex.submit(rendezvous, str(tmp_path), i, 4) for i in range(4)]
        assert [f.result(timeout=120) for f in futures] == [True] * 4

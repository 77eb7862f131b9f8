"""The manager's worker pool with real worker processes: results, deaths and walltimes name their task."""

import os
import select
import time

import pytest

from compute_endpoint import serialize
from compute_endpoint.manager.worker_pool import WorkerPool
from compute_endpoint.protocol import ErrorKind, Result, Task


def task(task_id: str, fn, *args) -> bytes:
    fn_hash, fn_bytes = serialize.dump_function(fn)
    return Task(task_id=task_id, fn_hash=fn_hash, fn_len=len(fn_bytes), reply_to="alice.s",
                payload=fn_bytes + serialize.dump_arguments(args, {})).pack()


def die(code):
    import os

    os._exit(code)


def nap(seconds):
    import time

    time.sleep(seconds)


@pytest.fixture
def pool():
    pool = WorkerPool(size=1, manager_id="m1", max_result_bytes=2**20, env=dict(os.environ))
    pool.start()
    yield pool
    pool.stop()


def run(pool: WorkerPool, timeout: float = 30.0) -> list[tuple[str, Result]]:
    """Poll the pool's workers until something comes back, as the manager's loop does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool.check_walltimes()
        readable, _, _ = select.select(list(pool.workers), [], [], 0.05)
        results = [item for fd in readable for item in pool.on_readable(fd)]
        if results:
            return [(task_id, Result.unpack(data)) for task_id, data in results]
    raise AssertionError("no result from the pool")


def test_a_result_comes_back_for_its_task(pool):
    (worker,) = pool.idle()
    pool.assign(worker, "t1", task("t1", pow, 2, 10), walltime=None)
    ((task_id, result),) = run(pool)
    assert task_id == "t1" and result.ok and serialize.load(result.payload) == 1024
    assert pool.idle() == [worker]


def test_a_worker_that_dies_is_replaced_and_its_task_is_reported_with_the_cause(pool):
    (worker,) = pool.idle()
    pool.assign(worker, "t2", task("t2", die, 3), walltime=None)
    ((task_id, result),) = run(pool)
    assert task_id == "t2" and result.error_kind == ErrorKind.WORKER_DIED
    assert "died (exit code 3)" in result.error_message
    assert pool.replaced == 1 and len(pool.idle()) == 1 and pool.idle()[0] is not worker


def test_a_task_over_its_walltime_has_its_worker_killed(pool):
    (worker,) = pool.idle()
    pool.assign(worker, "t3", task("t3", nap, 30), walltime=0.3)
    ((task_id, result),) = run(pool)
    assert task_id == "t3" and result.error_kind == ErrorKind.WALLTIME_EXCEEDED
    assert "walltime of 0.3s" in result.error_message

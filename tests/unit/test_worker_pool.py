"""The manager's worker pool with real worker processes: results, deaths, limits and stray writes name their task."""

import os
import select
import time

import pytest

from compute_endpoint import serialize
from compute_endpoint.errors import EndpointError
from compute_endpoint.limits import WorkerLimits
from compute_endpoint.manager.worker_pool import PoolOptions, WorkerPool
from compute_endpoint.procs import pid_alive
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


def make_pool(**limits) -> WorkerPool:
    pool = WorkerPool(1, "m1", PoolOptions(2**20, dict(os.environ), limits=WorkerLimits(**limits)))
    pool.start()
    return pool


@pytest.fixture
def pool():
    pool = make_pool()
    yield pool
    pool.stop()


def run(pool: WorkerPool, timeout: float = 30.0) -> list[tuple[str, Result]]:
    """Poll the pool's workers until something comes back, as the manager's loop does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool.check_limits()
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


def start_sleeper_then_nap(path, seconds):
    import pathlib
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "600"])
    pathlib.Path(path).write_text(str(child.pid))
    time.sleep(seconds)


def test_a_timed_out_task_takes_every_process_it_started_with_it(pool, tmp_path):
    (worker,) = pool.idle()
    record = tmp_path / "child.pid"
    pool.assign(worker, "t4", task("t4", start_sleeper_then_nap, str(record), 60), walltime=1.0)
    ((_, result),) = run(pool)
    assert result.error_kind == ErrorKind.WALLTIME_EXCEEDED and "every process it started" in result.error_message
    child = int(record.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child), "the task's `sleep 600` is gone with it"


def write_to_the_manager(what):
    import os
    import struct
    import sys

    fd = int(next(arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--fd=")))
    if what == "garbage":
        os.write(fd, struct.pack("!I", 1) + b"x")
    elif what == "huge":
        os.write(fd, struct.pack("!I", 2**32 - 1) + b"x" * 100)
    else:
        from compute_endpoint.protocol import Result

        frame = Result(task_id="someone-elses", ok=True).pack()
        os.write(fd, struct.pack("!I", len(frame)) + frame)
    import time

    time.sleep(2)
    return "the real result"


@pytest.mark.parametrize("what, kind, text", [
    ("garbage", ErrorKind.WORKER_PROTOCOL, "something that is not a result"),
    ("foreign", ErrorKind.WORKER_PROTOCOL, "a result for task 'someone-elses', not for its own"),
    ("huge", ErrorKind.PAYLOAD_TOO_LARGE, "4096.0 MiB for this task, over the endpoint's limit of 1.0 MiB"),
])
def test_a_task_writing_to_its_workers_channel_fails_alone_and_the_worker_is_replaced(pool, what, kind, text):
    (worker,) = pool.idle()
    pool.assign(worker, "t5", task("t5", write_to_the_manager, what), walltime=None)
    ((task_id, result),) = run(pool)
    assert task_id == "t5" and result.error_kind == kind and text in result.error_message
    assert pool.idle() and pool.idle()[0] is not worker, "a fresh worker takes its place"
    (fresh,) = pool.idle()
    pool.assign(fresh, "t6", task("t6", pow, 3, 3), walltime=None)
    assert [(tid, r.ok) for tid, r in run(pool)] == [("t6", True)]


def spin(seconds):
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def allocate(n):
    return len(bytearray(n))


def test_a_task_over_its_cpu_time_or_memory_fails_naming_the_limit():
    pool = make_pool(memory_bytes=512 * 2**20, cpu_seconds=1.0)
    try:
        (worker,) = pool.idle()
        pool.assign(worker, "cpu", task("cpu", spin, 30), walltime=None)
        ((_, result),) = run(pool)
        assert result.error_kind == ErrorKind.RESOURCE_LIMIT
        assert "CPU time limit of 1s (engine.worker_limits.cpu_seconds)" in result.error_message
        (worker,) = pool.idle()
        pool.assign(worker, "mem", task("mem", allocate, 4 * 2**30), walltime=None)
        ((_, result),) = run(pool)
        assert result.error_kind == ErrorKind.RESOURCE_LIMIT
        assert "out of memory under its worker's limit of 512.0 MiB (engine.worker_limits.memory)" in \
            result.error_message
        while not pool.idle():  # the worker that ran out exits; its replacement starts
            for fd in select.select(list(pool.workers), [], [], 0.05)[0]:
                pool.on_readable(fd)
        (worker,) = pool.idle()
        pool.assign(worker, "small", task("small", allocate, 2**20), walltime=None)
        assert run(pool)[0][1].ok, "the worker that ran out was replaced; the next task runs"
    finally:
        pool.stop()


def who_am_i(secret_path):
    import os
    import pathlib

    try:
        pathlib.Path(secret_path).read_text()
        readable = True
    except PermissionError:
        readable = False
    return os.getuid(), os.getgroups(), readable, "NOTIFY_SOCKET" in os.environ


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (the unit grants CAP_SETUID instead)")
def test_workers_can_run_as_a_user_that_cannot_read_the_managers_files(tmp_path, monkeypatch):
    secret = tmp_path / "credentials"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    pool = WorkerPool(1, "m1", PoolOptions(2**20, None, worker_user="nobody"))
    pool.start()
    try:
        (worker,) = pool.idle()
        pool.assign(worker, "t", task("t", who_am_i, str(secret)), walltime=None)
        ((_, result),) = run(pool)
        assert serialize.load(result.payload) == (65534, [], False, False)
        (worker,) = pool.idle()
        pool.assign(worker, "n", task("n", nap, 30), walltime=0.5)
        ((_, result),) = run(pool)
        assert result.error_kind == ErrorKind.WALLTIME_EXCEEDED, "and the manager can still stop them"
    finally:
        pool.stop()


def test_an_unknown_worker_user_is_refused_with_what_to_do():
    with pytest.raises(EndpointError, match="no such user .* create it, or unset the worker user"):
        WorkerPool(1, "m1", PoolOptions(2**20, worker_user="no-such-user-here"))

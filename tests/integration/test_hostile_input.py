"""Hostile input and runaway tasks, through the real components: each is refused or stopped with a reason
that reaches its sender, and the endpoint goes on serving everyone else, losing nothing.

Managers here are raw ZeroMQ peers of the test's own on the endpoint's local manager socket (the endpoint
is configured to start none), so that they can say what no real manager would.
"""

import math
import subprocess
import time
import uuid

import pytest

from compute_endpoint import serialize
from compute_endpoint.paths import EndpointDir
from compute_endpoint.protocol import Result, ResultBatch, Task, TaskBatch
from compute_endpoint.protocol.codec import encode
from compute_endpoint.sdk import InvalidTaskError, TaskDeadlineError, TaskTimeoutError, WorkerResourceError

from ..support.broker import wait_for
from ..support.raw_manager import RawManager

# No managers of the endpoint's own: only the raw ones the tests register. Short heartbeats, no retries.
BY_HAND = {"engine": {"provider": {"init_blocks": 0, "min_blocks": 0, "max_blocks": 1, "parallelism": 0},
                      "max_workers_per_node": 1, "prefetch_capacity": 0, "heartbeat_period": 0.5,
                      "heartbeat_threshold": 2, "max_retries_on_system_failure": 0}}


def manager_socket(ep) -> str:
    return EndpointDir(ep.name, ep.dir, ep.dir).local_manager_socket


def take_tasks(manager: RawManager, count: int, timeout: float = 30.0) -> list[Task]:
    tasks: list[Task] = []
    deadline = time.monotonic() + timeout
    while len(tasks) < count and time.monotonic() < deadline:
        got = manager.receive(TaskBatch, deadline - time.monotonic())
        if got is not None:
            tasks += [Task.unpack(frame) for frame in got[1]]
            manager.held = [t.task_id for t in tasks]
    assert len(tasks) == count, f"the raw manager got {len(tasks)} of {count} tasks"
    return tasks


def answer(task: Task) -> bytes:
    fn = serialize.load(task.payload[:task.fn_len])
    args, kwargs = serialize.load(task.payload[task.fn_len:])
    return Result(task_id=task.task_id, ok=True, payload=serialize.dump_value(fn(*args, **kwargs))).pack()


def test_the_interchange_drops_malformed_manager_messages_and_forwards_the_rest_of_a_batch(endpoint_factory):
    ep = endpoint_factory(config=BY_HAND)
    interchange_pid = ep.components()["interchange"]
    rogue = RawManager(manager_socket(ep), "typo")
    big = RawManager(manager_socket(ep), "big-node")
    try:
        registration = {"manager_id": "typo", "hostname": "h", "pid": 1, "workers": 1}
        rogue.send(encode(10, {**registration, "container_types": [{}]}))  # a dict where a string belongs
        rogue.send(encode(11, {"sender": "typo"}, b'[["nested"]]'))  # a heartbeat listing a list
        rogue.send(encode(99, {}))
        rogue.send(b"\x00" * 3)
        rogue.send(b"")
        # 40,000 workers: twice that is more than AMQP's 16-bit prefetch can say
        assert big.register(workers=40_000), "the interchange still answers registrations"
        with ep.executor() as ex:
            futures = [ex.submit(pow, 2, n) for n in range(3)]
            tasks = take_tasks(big, 3)
            first, *rest = (answer(t) for t in tasks)
            big.send(ResultBatch(sender="big-node").pack(), first, b"not a result", *rest)
            assert sorted(f.result(timeout=30) for f in futures) == [1, 2, 4], "the results around the bad one"
        big.heartbeat()  # (the threshold is 2 s: asked in-process at once, not through a CLI that may take longer)
        status = ep.client().send_command(ep.endpoint_id, "status", timeout=10).data
        assert ep.components()["interchange"] == interchange_pid, "the interchange never stopped"
        assert status["broker"]["prefetch"] == 65_535, "the prefetch is capped at what AMQP carries"
        assert status["manager_messages_refused"] >= 4
        assert status["internal_errors"] == 0
    finally:
        rogue.close()
        big.close()
    log = (ep.dir / "logs" / "interchange.log").read_text()
    assert "Traceback" not in log, "every refusal was foreseen"
    assert "a malformed result" in log and "must be a list of strings" in log


def test_a_task_lost_inside_the_endpoint_fails_after_its_deadline(endpoint_factory):
    ep = endpoint_factory(config={**BY_HAND, "engine": {**BY_HAND["engine"], "task_walltime": 1}})
    silent = RawManager(manager_socket(ep), "silent")
    try:
        assert silent.register()
        with ep.executor() as ex:
            future = ex.submit(pow, 2, 5)
            (task,) = take_tasks(silent, 1)  # held and declared in every heartbeat, never answered
            started = time.monotonic()
            while not future.done() and time.monotonic() - started < 60:
                silent.receive(TaskBatch, 0.5)
            with pytest.raises(TaskDeadlineError, match="no result for this task .* long past its walltime of 1s"):
                future.result(timeout=0)
            silent.send(ResultBatch(sender="silent").pack(), answer(task))  # too late: dropped, not twice
            assert ex.submit(len, "ab") is not None
        assert ep.status()["tasks_outstanding"] == 0, "its delivery was acked: no prefetch slot held"
    finally:
        silent.close()


def start_child_then_sleep(marker: str, seconds: float):
    import subprocess
    import time

    subprocess.Popen(["sleep", marker])
    time.sleep(seconds)


def test_the_operators_walltime_is_a_ceiling_and_takes_the_tasks_children_with_it(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"task_walltime": 2, "max_workers_per_node": 1}})
    marker = f"600.{uuid.uuid4().int % 10**9}"  # a `sleep` of our own to look for
    with pytest.raises(ValueError, match="finite number of seconds above 0"):
        ep.executor(walltime=math.nan)
    with ep.executor(walltime=1e9) as ex:
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError, match="walltime of 2s"):
            ex.submit(start_child_then_sleep, marker, 12).result(timeout=60)
        assert time.monotonic() - started < 10, "killed at the operator's 2s, not the client's 1e9"
        wait_for(lambda: subprocess.run(["pgrep", "-f", f"sleep {marker}"]).returncode == 1,
                 what="the task's child process to be gone")
        ex._walltime = 0.0  # past the SDK's own check, as another client could send it
        with pytest.raises(InvalidTaskError, match="walltime must be a finite number of seconds above 0"):
            ex.submit(pow, 2, 2).result(timeout=30)
        ex.walltime = None
        assert ex.submit(pow, 2, 3).result(timeout=30) == 8


def test_a_task_over_its_memory_limit_fails_naming_it_and_the_endpoint_keeps_serving(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"max_workers_per_node": 1, "worker_limits": {"memory": "512MiB"}}})
    with ep.executor() as ex:
        with pytest.raises(WorkerResourceError, match=r"limit of 512\.0 MiB \(engine\.worker_limits\.memory\)"):
            ex.submit(bytearray, 64 * 2**30).result(timeout=60)
        assert ex.submit(sum, [1, 2]).result(timeout=60) == 3
    assert ep.state() == "Running"

"""Nothing lost: every submitted task yields exactly one result, whatever process is killed.

Each test kills a real process with a real signal in the middle of real work.
"""

import os
import signal
import time
from pathlib import Path

import pytest

from compute_endpoint.procs import pid_alive
from compute_endpoint.sdk import TaskTimeoutError, WorkerDiedError

from ..support.broker import wait_for
from ..support.tasks import nap

TWO_MANAGERS = {"engine": {"provider": {"init_blocks": 2, "min_blocks": 2, "max_blocks": 2}}}


def record_and_sleep(path: str, seconds: float):
    """Append this attempt's pid to ``path``; sleep only on the first attempt."""
    import os
    import time

    with open(path, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    with open(path) as handle:
        attempts = handle.read().split()
    if len(attempts) == 1:
        time.sleep(seconds)
    return attempts



def mark_and_nap(path: str, seconds: float, value):
    import time
    from pathlib import Path

    Path(path).touch()
    time.sleep(seconds)
    return value


def first_pid(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout=30, what=f"{path} to be written")
    return int(path.read_text().split()[0])


def two_managers(endpoint_factory):
    """An endpoint with both its managers registered, and the pid of the first."""
    ep = endpoint_factory(config=TWO_MANAGERS)
    wait_for(lambda: ep.status()["managers"] == 2, what="two managers")
    return ep, ep.components()["managers"][0]


def naps_under_way(ex, count: int, seconds: float, finished: int) -> list:
    """Submit ``count`` naps returning their index; return once ``finished`` of them are done."""
    futures = [ex.submit(nap, seconds, i) for i in range(count)]
    wait_for(lambda: sum(f.done() for f in futures) >= finished, what="work to be under way")
    return futures


def test_worker_sigkilled_mid_task_is_retried_on_a_fresh_worker(endpoint, tmp_path):
    marker = tmp_path / "attempts"
    with endpoint.executor() as ex:
        future = ex.submit(record_and_sleep, str(marker), 60)
        os.kill(first_pid(marker), signal.SIGKILL)
        attempts = future.result(timeout=60)
        assert len(attempts) == 2 and attempts[0] != attempts[1], "ran again, on another worker"
        assert [f.result(timeout=60) for f in [ex.submit(nap, 0, i) for i in range(8)]] == list(range(8))
    assert endpoint.status()["workers"] == 2


def test_worker_sigkilled_without_retries_fails_saying_the_worker_died(endpoint_factory, tmp_path):
    ep = endpoint_factory(config={"engine": {"max_retries_on_system_failure": 0}})
    marker = tmp_path / "attempts"
    with ep.executor() as ex:
        future = ex.submit(record_and_sleep, str(marker), 60)
        os.kill(first_pid(marker), signal.SIGKILL)
        with pytest.raises(WorkerDiedError, match="worker process running this task died .killed by signal SIGKILL"):
            future.result(timeout=60)


def test_manager_sigkilled_with_tasks_in_flight_loses_nothing_and_is_replaced(endpoint_factory):
    ep, victim = two_managers(endpoint_factory)
    with ep.executor() as ex:
        futures = naps_under_way(ex, 60, 0.2, finished=8)
        os.kill(victim, signal.SIGKILL)
        assert [f.result(timeout=120) for f in futures] == list(range(60))
    status = wait_for(lambda: (s := ep.status())["managers"] == 2 and s, what="a replacement manager")
    assert status["managers_replaced"] >= 1
    assert victim not in status["pids"]["managers"]


def test_a_silent_manager_is_declared_lost_by_heartbeat_and_its_tasks_requeued(endpoint_factory):
    """SIGSTOP freezes a manager without killing it: only heartbeats can tell."""
    ep, frozen = two_managers(endpoint_factory)
    try:
        with ep.executor() as ex:
            futures = naps_under_way(ex, 40, 0.3, finished=4)
            os.kill(frozen, signal.SIGSTOP)
            assert [f.result(timeout=120) for f in futures] == list(range(40))
        log = (ep.dir / "logs" / "interchange.log").read_text()
        assert "declaring it lost" in log
    finally:
        os.kill(frozen, signal.SIGCONT)
    # thawed, it registers again and serves
    wait_for(lambda: ep.status()["managers"] == 2, what="the thawed manager to register again")


def test_interchange_sigkilled_is_restarted_and_no_task_vanishes(endpoint):
    with endpoint.executor() as ex:
        futures = naps_under_way(ex, 300, 0.02, finished=30)
        os.kill(endpoint.components()["interchange"], signal.SIGKILL)
        assert [f.result(timeout=120) for f in futures] == list(range(300))
    assert endpoint.status()["interchange_restarts"] == 1


def test_endpoint_sigkilled_then_started_again_delivers_every_result_once(endpoint):
    with endpoint.executor() as ex:
        futures = naps_under_way(ex, 400, 0.01, finished=40)
        daemon = endpoint.components()["endpoint"]
        os.kill(daemon, signal.SIGKILL)
        wait_for(lambda: not pid_alive(daemon), what="the daemon to die")
        done_at_crash = sum(f.done() for f in futures)
        assert done_at_crash < 400, "the crash should interrupt the run"
        assert endpoint.state() == "Disconnected"
        endpoint.start()  # unacked tasks come back from the broker into work
        results = [f.result(timeout=120) for f in futures]
    assert results == list(range(400))


def test_task_over_its_walltime_is_killed_with_a_timeout_error(endpoint_factory):
    ep = endpoint_factory(config={"engine": {"task_walltime": 2}})
    with ep.executor() as ex:
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError, match="longer than its walltime of 2s and was killed"):
            ex.submit(nap, 60, None).result(timeout=60)
        assert time.monotonic() - started < 30
        ex.walltime = 1  # per task, from the SDK
        with pytest.raises(TaskTimeoutError, match="walltime of 1s"):
            ex.submit(nap, 60, None).result(timeout=60)
        ex.walltime = None
        assert ex.submit(nap, 0.1, "fits").result(timeout=60) == "fits"


def test_stop_drains_short_tasks_and_returns_long_ones_to_the_queue(endpoint_factory, tmp_path):
    ep = endpoint_factory(config={"stop_timeout": 3})
    with ep.executor() as ex:
        short = ex.submit(mark_and_nap, str(tmp_path / "short"), 2, "short")
        long = ex.submit(mark_and_nap, str(tmp_path / "long"), 10, "long")
        wait_for(lambda: (tmp_path / "short").exists() and (tmp_path / "long").exists(),
                 what="both tasks to be running")
        began = time.monotonic()
        stopped = ep.stop()
        assert stopped.returncode == 0
        assert time.monotonic() - began < 15, "stop returns within its timeout"
        assert short.result(timeout=5) == "short", "drained: finished before the endpoint stopped"
        assert not long.done()
        ep.start()
        assert long.result(timeout=60) == "long", "returned to the queue, run after the restart"


def test_a_manager_stopped_with_sigterm_finishes_its_tasks_before_leaving(endpoint_factory, tmp_path):
    """How a rolling upgrade takes a manager out: nothing it holds is lost or run twice."""
    ep, leaving = two_managers(endpoint_factory)
    with ep.executor() as ex:
        futures = naps_under_way(ex, 30, 0.3, finished=4)
        os.kill(leaving, signal.SIGTERM)
        assert [f.result(timeout=120) for f in futures] == list(range(30))
        assert ex.duplicates_dropped == 0, "drained, not killed: no task ran twice"
    log = (ep.dir / "logs" / "interchange.log").read_text()
    assert "is draining; sending it no more tasks" in log and "left" in log

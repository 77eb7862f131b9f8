"""A real manager whose workers run in per-function containers (podman, Charliecloud), facing a stand-in
interchange: each task runs in a worker of its own type, warm workers are reused, an idle worker of another
type gives up its slot, and a hard-routed manager refuses types it was not started for."""

import json
import os
import subprocess
import time
import uuid

from compute_endpoint import serialize
from compute_endpoint.manager.settings import ManagerSettings
from compute_endpoint.protocol import (
    Heartbeat,
    ManagerRegistration,
    Result,
    ResultAck,
    ResultBatch,
    Task,
    TaskBatch,
    unpack_any,
)

from ..support.tasks import where_am_i
from .conftest import IMAGE_PYTHON


def start_manager(interchange, tmp_path, images, workers: int, worker_type: str, idle_timeout: float = 600.0):
    containers = {f"podman:{images['podman']}": {"runtime": "podman", "image": images["podman"]},
                  f"charliecloud:{images['charliecloud']}": {"runtime": "charliecloud",
                                                             "image": images["charliecloud"]}}
    settings = ManagerSettings(interchange=interchange[1], workers=workers, manager_id=f"m-{uuid.uuid4().hex[:6]}",
                               heartbeat_period=0.5, log_file=tmp_path / "manager.log", worker_type=worker_type,
                               worker_containers=json.dumps(containers), container_python=IMAGE_PYTHON,
                               container_idle_timeout=idle_timeout)
    return subprocess.Popen(settings.command(), env={**os.environ, "USER": os.environ.get("USER", "root")})


def task(ctype: str, fn=where_am_i) -> Task:
    fn_hash, fn_bytes = serialize.dump_function(fn)
    return Task(task_id=uuid.uuid4().hex, fn_hash=fn_hash, fn_len=len(fn_bytes), reply_to="alice.s1",
                container_type=ctype, payload=fn_bytes + serialize.dump_arguments((), {}))


def run_tasks(sock, identity: bytes, tasks: list[Task], seq: int, timeout: float = 120) -> dict[str, Result]:
    sock.send_multipart([identity, TaskBatch(seq=seq).pack(), *[t.pack() for t in tasks]])
    results: dict[str, Result] = {}
    deadline = time.monotonic() + timeout
    while len(results) < len(tasks) and time.monotonic() < deadline:
        if sock.poll(200):
            frames = sock.recv_multipart()
            if isinstance(unpack_any(frames[1]), ResultBatch):
                batch = [Result.unpack(frame) for frame in frames[2:]]
                results.update((result.task_id, result) for result in batch)
                sock.send_multipart([identity, ResultAck(task_ids=[r.task_id for r in batch]).pack()])
    assert len(results) == len(tasks), f"{len(results)} of {len(tasks)} results within {timeout}s"
    return results


def registration(sock) -> tuple[bytes, ManagerRegistration]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sock.poll(200):
            frames = sock.recv_multipart()
            msg = unpack_any(frames[1])
            if isinstance(msg, ManagerRegistration):
                return frames[0], msg
    raise AssertionError("the manager never registered")


def stop(manager: subprocess.Popen) -> None:
    manager.terminate()
    try:
        manager.wait(30)
    except subprocess.TimeoutExpired:
        manager.kill()
        manager.wait(10)
        raise


def worker_containers() -> list[str]:
    out = subprocess.run(["podman", "ps", "--all", "--format={{.Names}}"], capture_output=True, text=True,
                         check=True).stdout
    return [name for name in out.split() if name.startswith("ce-worker-")]


def test_each_task_runs_in_a_worker_of_its_own_type(interchange, tmp_path, images):
    sock, _ = interchange
    manager = start_manager(interchange, tmp_path, images, workers=2, worker_type="any")
    try:
        identity, reg = registration(sock)
        podman, charlie = f"podman:{images['podman']}", f"charliecloud:{images['charliecloud']}"
        assert reg.container_types == ["RAW", podman, charlie]
        tasks = [task(podman), task(charlie)]
        results = run_tasks(sock, identity, tasks, seq=1)
        inside = {t.container_type: serialize.load(results[t.task_id].payload) for t in tasks}
        assert inside[podman]["containerenv"] and not inside[charlie]["containerenv"]
        assert all(r["python"] == IMAGE_PYTHON for r in inside.values())
        assert len(worker_containers()) == 1, "one podman worker, warm"
        # Both slots hold warm workers now: a RAW task replaces one of them, whichever is idle.
        raw = task("RAW", fn=os.getpid)
        result = run_tasks(sock, identity, [raw], seq=2)[raw.task_id]
        assert result.error_kind is None, result
        assert worker_containers() == [], "the idle podman worker gave its slot to the RAW one"
    finally:
        stop(manager)
    assert worker_containers() == [], "stopping the manager removes its workers' containers"


def heartbeat(sock, timeout: float = 30) -> Heartbeat:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(200):
            msg = unpack_any(sock.recv_multipart()[1])
            if isinstance(msg, Heartbeat):
                return msg
    raise AssertionError("no heartbeat")


def test_heartbeats_count_workers_by_type_and_an_idle_container_worker_stops_after_the_timeout(interchange,
                                                                                                 tmp_path, images):
    sock, _ = interchange
    podman = f"podman:{images['podman']}"
    manager = start_manager(interchange, tmp_path, images, workers=2, worker_type="any", idle_timeout=3)
    try:
        identity, _ = registration(sock)
        first, second = task(podman), task(podman)
        run_tasks(sock, identity, [first], seq=1)
        run_tasks(sock, identity, [second], seq=2)  # the same worker, warm
        beat = heartbeat(sock)
        assert (beat.cold_starts, beat.warm_hits) == (1, 1)
        if beat.warm_containers:  # (unless the timeout passed already)
            assert beat.warm_containers == [podman] and beat.busy_containers == []
        deadline = time.monotonic() + 30
        while worker_containers() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert worker_containers() == [], "the idle podman worker was stopped after 3 s"
        deadline = time.monotonic() + 10  # (heartbeats from before wait in the socket)
        while (beat := heartbeat(sock)).warm_containers and time.monotonic() < deadline:
            pass
        assert beat.warm_containers == [] and beat.cold_starts == 1
        again = task(podman)  # a new one starts when the type comes back
        assert serialize.load(run_tasks(sock, identity, [again], seq=3)[again.task_id].payload)["containerenv"]
    finally:
        stop(manager)
    assert "stopped 1 container worker(s) idle for over 3s" in (tmp_path / "manager.log").read_text()


def test_a_hard_routed_manager_refuses_a_type_it_was_not_started_for(interchange, tmp_path, images):
    sock, _ = interchange
    podman = f"podman:{images['podman']}"
    manager = start_manager(interchange, tmp_path, images, workers=1, worker_type=podman)
    try:
        identity, reg = registration(sock)
        assert reg.container_types == [podman]
        good, other = task(podman), task("RAW", fn=os.getpid)
        results = run_tasks(sock, identity, [good, other], seq=1)
        assert serialize.load(results[good.task_id].payload)["containerenv"]
        assert "runs no workers of type 'RAW'" in results[other.task_id].error_message
    finally:
        stop(manager)
    assert worker_containers() == []


def test_a_container_that_cannot_start_fails_its_task_with_the_reason_and_nothing_loops(interchange, tmp_path,
                                                                                        images):
    sock, _ = interchange
    missing = "podman:localhost/no-such-image:1"
    settings = ManagerSettings(interchange=interchange[1], workers=1, manager_id="m-missing", heartbeat_period=0.5,
                               log_file=tmp_path / "manager.log", worker_type="any", container_python=IMAGE_PYTHON,
                               worker_containers=json.dumps({missing: {"runtime": "podman",
                                                                       "image": "localhost/no-such-image:1"}}))
    manager = subprocess.Popen(settings.command())
    try:
        identity, _ = registration(sock)
        doomed = task(missing)
        result = run_tasks(sock, identity, [doomed], seq=1)[doomed.task_id]
        assert result.error_type == "WorkerDied" and "in its container (podman:localhost/no-such-image:1)" in \
            result.error_message
        time.sleep(2)
        log = (tmp_path / "manager.log").read_text()
        assert log.count("exited (exit code") == 1, "the slot stays unused: no restart loop"
        raw = task("RAW", fn=os.getpid)
        assert run_tasks(sock, identity, [raw], seq=2)[raw.task_id].error_kind is None, "the manager serves on"
    finally:
        stop(manager)

"""A real manager process facing a stand-in interchange (a ZeroMQ ROUTER of the test's own):
malformed frames from the interchange are dropped with a log line, and the manager keeps serving."""

import subprocess
import sys
import time

import pytest
import zmq

from compute_endpoint.manager.settings import ManagerSettings
from compute_endpoint.protocol import (
    Control,
    ControlAction,
    Heartbeat,
    ManagerRegistration,
    ResultBatch,
    Task,
    TaskBatch,
    unpack_any,
)
from compute_endpoint.protocol.codec import encode


@pytest.fixture
def manager(interchange, tmp_path):
    settings = ManagerSettings(interchange=interchange[1], workers=1, manager_id="m-under-test",
                               heartbeat_period=0.2, log_file=tmp_path / "manager.log")
    process = subprocess.Popen(settings.command())
    yield process, settings.log_file
    process.kill()
    process.wait(10)


def receive(sock: zmq.Socket, kind: type, timeout: float = 20.0):
    """The next message of ``kind`` from the manager (heartbeats in between are skipped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            frames = sock.recv_multipart()
            msg = unpack_any(frames[1])
            if isinstance(msg, kind):
                return frames[0], msg, frames[2:]
    raise AssertionError(f"no {kind.__name__} from the manager within {timeout}s")


def test_malformed_frames_from_the_interchange_do_not_stop_the_manager(interchange, manager):
    sock, _ = interchange
    process, log_file = manager
    identity, registration, _ = receive(sock, ManagerRegistration)
    assert registration.manager_id == "m-under-test"
    for garbage in ([b"not a message"], [encode(Control.KIND, {"action": "self-destruct"})],
                    [TaskBatch(seq=1).pack(), b"\x00 not a task"], [encode(Heartbeat.KIND, {"sender": 5})], []):
        sock.send_multipart([identity, *garbage] if garbage else [identity, b""])
    task = Task(task_id="t1", fn_hash="0" * 32, fn_len=0, reply_to="a.b").pack()
    sock.send_multipart([identity, TaskBatch(seq=2).pack(), task])
    _, _, results = receive(sock, ResultBatch)
    assert [unpack_any(r).task_id for r in results] == ["t1"], "a task sent after the garbage is still run"
    sock.send_multipart([identity, Control(action=ControlAction.REGISTER).pack()])
    receive(sock, ManagerRegistration)
    assert process.poll() is None
    assert "dropped a malformed message from the interchange" in log_file.read_text()


def test_the_manager_refuses_a_bad_command_line_with_the_flag_named():
    done = subprocess.run([sys.executable, "-m", "compute_endpoint.manager", "--workers", "2"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "the following arguments are required: --interchange" in done.stderr

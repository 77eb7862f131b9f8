"""The interchange alone, driven by simulated managers: does its cost per task grow with their number?

    python bench/interchange_sim.py [--managers 1 10 100 1000] [--slots 100] [--tasks 50000]

Two measurements for each number of managers:

* policy: the Scheduler in this process, dispatching and completing tasks over
  that many managers; microseconds per task;
* process: a real interchange process, its managers simulated by one process
  holding a DEALER socket per manager (over TCP with CurveZMQ, as managers on
  other hosts connect) (each registers with --slots workers and
  answers every task at once), fed by a simulated endpoint; throughput and the
  interchange's CPU microseconds per task (from /proc).
Prints one JSON object.
"""

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from compute_endpoint.curve import MANAGER, KeyStore
from compute_endpoint.endpoint.components import free_ports
from compute_endpoint.interchange.manager_record import ManagerRecord
from compute_endpoint.interchange.scheduler import Scheduler
from compute_endpoint.interchange.settings import InterchangeSettings
from compute_endpoint.protocol import (
    Control,
    ControlAction,
    ManagerRegistration,
    Result,
    ResultBatch,
    Task,
    TaskBatch,
    unpack_any,
)


def policy_cost(managers: int, slots: int, tasks: int) -> float:
    scheduler = Scheduler(max_retries=0)
    for index in range(managers):
        scheduler.add_manager(ManagerRecord(manager_id=f"m{index}", workers=slots), [])
    data = b"x" * 100
    began = time.perf_counter()
    done = 0
    while done < tasks:
        for n in range(min(1000, tasks - done)):
            scheduler.submit(f"t{done + n}", data)
        for _record, entries in scheduler.dispatch():
            for entry in entries:
                scheduler.complete(entry.task_id, system_failure=False)
        done += min(1000, tasks - done)
    return (time.perf_counter() - began) / tasks * 1e6


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cost(managers: int, slots: int, tasks: int, window: int = 20000) -> dict:
    worker_port = free_ports("127.0.0.1")[0]
    socket_dir = tempfile.mkdtemp(prefix="ce-sim-")
    endpoint_address = f"ipc://{socket_dir}/endpoint.sock"
    keys = KeyStore(Path(socket_dir) / "keys")
    settings = InterchangeSettings(endpoint_address=endpoint_address, worker_address="127.0.0.1",
                                   worker_port=worker_port, keys_dir=keys.directory,
                                   heartbeat_period=3600, heartbeat_threshold=7200, log_level="WARNING")
    interchange = subprocess.Popen(settings.command(), preexec_fn=_raise_fd_limit, stderr=subprocess.DEVNULL)
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, managers + 64)
    try:
        socks = _register_managers(ctx, managers, slots, worker_port, _curve_keys(keys))
        endpoint = ctx.socket(zmq.DEALER)
        endpoint.setsockopt(zmq.IDENTITY, b"endpoint")
        endpoint.connect(endpoint_address)
        endpoint.send(Control(action=ControlAction.HELLO).pack())
        task = Task(task_id="", fn_hash="0" * 32, fn_len=0, reply_to="a.b").pack()
        cpu_before = _cpu_seconds(interchange.pid)
        began = time.perf_counter()
        _drive(endpoint, socks, task, tasks, window)
        elapsed = time.perf_counter() - began
        cpu = _cpu_seconds(interchange.pid) - cpu_before
        return {"throughput": tasks / elapsed, "interchange_cpu_us_per_task": cpu / tasks * 1e6}
    finally:
        interchange.terminate()
        interchange.wait(10)
        ctx.destroy(linger=0)
        shutil.rmtree(socket_dir, ignore_errors=True)


def _curve_keys(keys: KeyStore) -> dict:
    """The endpoint's own manager pair, which its interchange admits: every simulated manager uses it."""
    deadline = time.monotonic() + 30
    while keys.pair(MANAGER) is None or keys.endpoint_public_key() is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the interchange made no CurveZMQ keys within 30 s")
        time.sleep(0.05)
    pair = keys.pair(MANAGER)
    return {zmq.CURVE_PUBLICKEY: pair.public.encode(), zmq.CURVE_SECRETKEY: pair.secret.encode(),
            zmq.CURVE_SERVERKEY: keys.endpoint_public_key().encode()}


def _register_managers(ctx, managers: int, slots: int, port: int, curve: dict) -> list:
    socks = []
    for index in range(managers):
        sock = ctx.socket(zmq.DEALER)
        for option, value in curve.items():
            sock.setsockopt(option, value)
        sock.setsockopt(zmq.IDENTITY, f"sim-{index}".encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        sock.send(ManagerRegistration(manager_id=f"sim-{index}", hostname="sim", pid=0, workers=slots).pack())
        socks.append(sock)
    for sock in socks:  # the interchange answers each registration with a heartbeat
        sock.recv_multipart()
    return socks


def _drive(endpoint, socks, task_template: bytes, tasks: int, window: int) -> None:
    """Keep `window` tasks in flight; simulated managers answer every task at once."""
    poller = zmq.Poller()
    poller.register(endpoint, zmq.POLLIN)
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    sent = received = 0
    ok = Result(task_id="", ok=True)
    while received < tasks:
        if sent - received < window and sent < tasks:
            count = min(1000, tasks - sent, window - (sent - received))
            batch = [_with_id(task_template, f"{sent + n}") for n in range(count)]
            endpoint.send_multipart([TaskBatch().pack()] + batch)
            sent += count
        for sock, _ in poller.poll(100):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                msg = unpack_any(frames[0])
                if sock is endpoint:
                    if isinstance(msg, ResultBatch):
                        received += len(frames) - 1
                elif isinstance(msg, TaskBatch):
                    ids = [Task.peek(f).task_id for f in frames[1:]]
                    sock.send_multipart([ResultBatch().pack()] +
                                        [dataclasses.replace(ok, task_id=t).pack() for t in ids])


def _with_id(template: bytes, task_id: str) -> bytes:
    task = Task.unpack(template)
    task.task_id = task_id
    return task.pack()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--managers", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=50000)
    args = parser.parse_args()
    _raise_fd_limit()
    report = {"slots": args.slots, "tasks": args.tasks, "runs": []}
    for managers in args.managers:
        run = {"managers": managers, "policy_us_per_task": policy_cost(managers, args.slots, args.tasks)}
        run.update(process_cost(managers, args.slots, args.tasks))
        report["runs"].append(run)
        print(json.dumps(run), file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

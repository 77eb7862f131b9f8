"""The manager's pool of worker processes: start, feed, watch, replace.

Each worker is a child process connected by a stream socket. A worker that
dies (segfault, ``os._exit``, OOM kill) is noticed by end-of-stream on that
socket; its task gets an error result and a fresh worker takes its place. A
task over its walltime has its worker killed.
"""

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from ..procs import describe_exit, terminate
from ..protocol import ErrorKind, Result
from ..protocol.worker_stream import FrameReader, write_frame
from ..worker.settings import WorkerSettings

log = logging.getLogger(__name__)


@dataclass
class RunningTask:
    task_id: str
    started: float
    deadline: float | None
    walltime: float | None


@dataclass
class WorkerHandle:
    index: int
    process: subprocess.Popen
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    task: RunningTask | None = None
    killed_for_walltime: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def fileno(self) -> int:
        return self.sock.fileno()


class WorkerPool:
    def __init__(self, size: int, manager_id: str, max_result_bytes: int, env: dict[str, str] | None = None,
                 stdout: BinaryIO | None = None, plain_arguments: bool = False):
        self.size = size
        self.manager_id = manager_id
        self.max_result_bytes = max_result_bytes
        self.plain_arguments = plain_arguments
        self.env = env
        self.stdout = stdout
        self.workers: dict[int, WorkerHandle] = {}  # keyed by socket fd
        self._next_index = 0
        self.replaced = 0
        self.generation = 0  # changes whenever the set of workers does

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        while len(self.workers) < self.size:
            self._spawn()

    def _spawn(self) -> WorkerHandle:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        settings = WorkerSettings(fd=theirs.fileno(), parent_pid=os.getpid(),
                                  max_result_bytes=self.max_result_bytes, manager_id=self.manager_id,
                                  plain_arguments=self.plain_arguments)
        process = subprocess.Popen(settings.command(), pass_fds=(theirs.fileno(),), env=self.env,
                                   stdin=subprocess.DEVNULL, stdout=self.stdout, stderr=self.stdout)
        theirs.close()
        handle = WorkerHandle(self._next_index, process, mine)
        self._next_index += 1
        self.workers[mine.fileno()] = handle
        self.generation += 1
        log.debug("started worker %d (pid %d)", handle.index, process.pid)
        return handle

    def stop(self, timeout: float = 2.0) -> None:
        for handle in self.workers.values():
            handle.sock.close()
        terminate([handle.process for handle in self.workers.values()], timeout)
        self.workers.clear()

    # --- work ----------------------------------------------------------------

    def idle(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.task is None]

    def assign(self, worker: WorkerHandle, task_id: str, task_bytes: bytes, walltime: float | None) -> None:
        now = time.monotonic()
        worker.task = RunningTask(task_id, now, now + walltime if walltime else None, walltime)
        try:
            write_frame(worker.sock, task_bytes)
        except OSError:
            # The worker is already dead; its end-of-stream will be read next and
            # the task reported through the usual worker-death path.
            log.warning("worker %d (pid %d) died before it received task %s", worker.index, worker.pid, task_id)

    def on_readable(self, fd: int) -> list[tuple[str, bytes]]:
        """Read from one worker: (task id, packed result) pairs, including death reports.

        A worker runs one task at a time, so whatever it sends is the result of its
        current task: it is passed on as it came, without decoding it here.
        """
        worker = self.workers.get(fd)
        if worker is None:
            return []
        try:
            data = worker.sock.recv(1 << 20)
        except (ConnectionResetError, OSError):
            data = b""
        if not data:
            return self._on_worker_exit(worker)
        results = []
        for frame in worker.reader.feed(data):
            if worker.task is None:
                log.error("worker %d (pid %d) sent %d bytes while running no task; ignored them", worker.index,
                          worker.pid, len(frame))
                continue
            results.append((worker.task.task_id, frame))
            worker.task = None
        return results

    def check_walltimes(self) -> None:
        """Kill workers whose task ran over its walltime; their exit is reported by on_readable."""
        now = time.monotonic()
        for worker in self.workers.values():
            task = worker.task
            if task and task.deadline and now > task.deadline and not worker.killed_for_walltime:
                log.warning("task %s exceeded its walltime of %ss; killing worker pid %d",
                            task.task_id, task.walltime, worker.pid)
                worker.killed_for_walltime = True
                _kill(worker.process, signal.SIGKILL)

    def _on_worker_exit(self, worker: WorkerHandle) -> list[tuple[str, bytes]]:
        del self.workers[worker.sock.fileno()]
        self.generation += 1
        worker.sock.close()
        code = worker.process.wait()
        self.replaced += 1
        replacement = self._spawn()
        log.info("worker %d (pid %d) exited (%s); started worker %d (pid %d)", worker.index, worker.pid,
                 describe_exit(code), replacement.index, replacement.pid)
        task = worker.task
        if task is None:
            return []
        if worker.killed_for_walltime:
            failure = Result.failure(task.task_id, ErrorKind.WALLTIME_EXCEEDED,
                                     f"the task ran longer than its walltime of {task.walltime:g}s and was killed",
                                     error_type="TaskWalltimeExceeded", manager=self.manager_id,
                                     worker_pid=worker.pid, finished_at=time.time())
        else:
            failure = Result.failure(task.task_id, ErrorKind.WORKER_DIED,
                                     f"the worker process running this task died ({describe_exit(code)})",
                                     error_type="WorkerDied", manager=self.manager_id, worker_pid=worker.pid,
                                     finished_at=time.time())
        return [(task.task_id, failure.pack())]


def _kill(process: subprocess.Popen, sig: int) -> None:
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass

"""The manager's pool of worker processes: start, feed, watch, replace.

Each worker is a child process connected by a stream socket, and the leader
of its own process group, so that whatever a task starts goes with it. A
worker that dies (segfault, ``os._exit``, OOM kill) is noticed by
end-of-stream on that socket; its task gets an error result and a fresh
worker takes its place. A worker is killed, with its whole group, when its
task runs over its walltime or its CPU time limit, or when it sends anything
but its task's result: the task fails with a result that says which.
"""

import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from ..containers.runtimes import WORKER_FD_IN_ENGINES, Container, RunContext, worker_command_line
from ..limits import WorkerLimits, cpu_seconds
from ..procs import describe_exit, terminate
from ..protocol import ErrorKind, ProtocolError, Result
from ..protocol.codec import MAX_HEADER_BYTES
from ..protocol.worker_stream import FrameReader, FrameTooLarge, write_frame
from ..worker.settings import WorkerSettings
from .worker_identity import WorkerIdentity, worker_env

log = logging.getLogger(__name__)

CPU_CHECK_PERIOD = 1.0  # seconds between reads of busy workers' CPU time
RAW = "RAW"


@dataclass
class RunningTask:
    task_id: str
    started: float
    deadline: float | None
    walltime: float | None
    cpu_at_start: float = 0.0


@dataclass
class Failure:
    """Why the manager killed a worker: the result its task gets once the worker is gone."""

    kind: ErrorKind
    error_type: str
    message: str


def pinned_to(accelerator: str) -> dict[str, str]:
    """The variables that make NVIDIA, AMD and Intel runtimes show a process one device (as Parsl sets them)."""
    return {"CUDA_VISIBLE_DEVICES": accelerator, "ROCR_VISIBLE_DEVICES": accelerator,
            "ZE_AFFINITY_MASK": accelerator, "COMPUTE_ENDPOINT_ACCELERATOR": accelerator}


@dataclass
class WorkerHandle:
    index: int
    process: subprocess.Popen
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    task: RunningTask | None = None
    failure: Failure | None = None  # set when the manager kills it
    submitter: str | None = None  # whose tasks it has run (with isolate_submitters)
    accelerator: str | None = None  # the one device it sees (available_accelerators)
    ctype: str = RAW  # RAW, or the RUNTIME:IMAGE of the container it runs in
    container_name: str = ""  # docker/podman: the container to remove when it is gone
    idle_since: float = field(default_factory=time.monotonic)  # since its last task ended (or it started)

    @property
    def pid(self) -> int:
        return self.process.pid

    def fileno(self) -> int:
        return self.sock.fileno()


@dataclass
class PoolOptions:
    max_result_bytes: int
    env: dict[str, str] | None = None
    output_fd: int | None = None  # the workers' stdout and stderr (None: the manager's own)
    plain_arguments: bool = False
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    worker_user: str = ""  # run workers as this user (see WorkerIdentity)
    working_dir: str = ""  # the workers' current directory (default: the workers' user's home, or the manager's)
    accelerators: tuple[str, ...] = ()  # one per worker, exported as CUDA_VISIBLE_DEVICES and its kin
    containers: dict[str, Container] = field(default_factory=dict)  # RUNTIME:IMAGE -> container, besides RAW
    start_type: str | None = RAW  # the type start() fills the pool with (hard routing); None: per task (soft)
    container_python: str = "python3"  # the interpreter in the images
    container_binds: tuple[str, ...] = ()  # directories a container sees at the same path


class WorkerPool:
    def __init__(self, size: int, manager_id: str, options: PoolOptions):
        self.size = size
        self.manager_id = manager_id
        self.options = options
        self.limits = options.limits
        # A result frame is its header and the result: a worker announcing more is cut off before it is read.
        self.max_frame = options.max_result_bytes + MAX_HEADER_BYTES + 64
        self.identity = WorkerIdentity(options.worker_user) if options.worker_user else None
        self.env = worker_env(options.env, self.identity)
        self.workers: dict[int, WorkerHandle] = {}  # keyed by socket fd
        self._next_index = 0
        self._next_cpu_check = 0.0
        self.replaced = 0
        self.generation = 0  # changes whenever the set of workers does
        self.cold_starts = 0  # container workers started
        self.warm_hits = 0  # tasks of a container type given to an idle worker of that type (the manager counts)

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        while self.options.start_type is not None and len(self.workers) < self.size:
            self._spawn(self.options.start_type)

    @property
    def unused(self) -> int:
        """Slots with no worker in them (soft routing starts workers per task type)."""
        return max(0, self.size - len(self.workers))

    def can_start(self, ctype: str) -> bool:
        if self.options.start_type is not None:  # hard routing: the one type it was started with
            return ctype == self.options.start_type
        return ctype == RAW or ctype in self.options.containers

    def spawn(self, ctype: str) -> WorkerHandle:
        """A new worker of ``ctype`` in an unused slot (the caller checked there is one)."""
        return self._spawn(ctype)

    def _spawn(self, ctype: str = RAW) -> WorkerHandle:
        opts = self.options
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        container = opts.containers.get(ctype) if ctype != RAW else None
        inside = container is not None and container.removable  # its own pid namespace, its socket at fd 3
        settings = WorkerSettings(fd=WORKER_FD_IN_ENGINES if inside else theirs.fileno(),
                                  parent_pid=0 if container else os.getpid(), max_result_bytes=opts.max_result_bytes,
                                  manager_id=self.manager_id, plain_arguments=opts.plain_arguments,
                                  memory_limit=self.limits.memory_bytes or 0,
                                  process_limit=self.limits.processes or 0,
                                  workdir=opts.working_dir or (self.identity.home if self.identity else ""))
        command = settings.command()
        accelerator = self._free_accelerator()
        name = ""
        if container is not None:
            name = f"ce-worker-{uuid.uuid4().hex[:12]}"
            run = RunContext(name=name, labels={"compute-endpoint.manager": self.manager_id[:200]},
                             binds=opts.container_binds, env_keys=tuple(opts.env or ()))
            user = (self.identity.uid, self.identity.gid) if self.identity and inside else None
            command, _ = worker_command_line(container, [opts.container_python, *command[1:]], theirs.fileno(), run,
                                             user)
        if self.identity is not None and not inside:
            command = self.identity.wrap(command)
        # (it changes to its workdir itself: the manager's user may not enter the workers' home)
        env = self.env if accelerator is None else {**(self.env or os.environ), **pinned_to(accelerator)}
        process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                                   stdout=opts.output_fd, stderr=opts.output_fd, start_new_session=True)
        theirs.close()
        handle = WorkerHandle(self._next_index, process, mine, FrameReader(self.max_frame), accelerator=accelerator,
                              ctype=ctype, container_name=name if inside else "")
        self._next_index += 1
        self.cold_starts += container is not None
        self.workers[mine.fileno()] = handle
        self.generation += 1
        log.debug("started worker %d (pid %d)", handle.index, process.pid)
        return handle

    def _free_accelerator(self) -> str | None:
        """The first accelerator no live worker holds (a replacement takes its predecessor's)."""
        held = {w.accelerator for w in self.workers.values()}
        return next((a for a in self.options.accelerators if a not in held), None)

    def stop(self, timeout: float = 2.0) -> None:
        for handle in self.workers.values():
            handle.sock.close()
        terminate([handle.process for handle in self.workers.values()], timeout)
        for handle in self.workers.values():
            _kill_group(handle.pid)
            _remove_container(handle)
        self.workers.clear()

    def recycle(self, worker: WorkerHandle, ctype: str | None = None) -> WorkerHandle:
        """Replace an idle worker with a fresh process: of its own type (another submitter's tasks must not share
        it), or of ``ctype`` (soft routing gives its slot to another container type)."""
        self._retire(worker)
        self.replaced += 1
        return self._spawn(ctype or worker.ctype)

    def _retire(self, worker: WorkerHandle) -> None:
        del self.workers[worker.sock.fileno()]
        worker.sock.close()
        _kill_group(worker.pid)
        worker.process.wait()
        _remove_container(worker)
        self.generation += 1

    def stop_idle_containers(self, timeout: float, now: float) -> list[str]:
        """Soft routing: container workers idle for over ``timeout`` seconds give their slot back (0: never).
        Returns their types."""
        if not timeout or self.options.start_type is not None:
            return []
        stale = [w for w in self.idle() if w.ctype != RAW and now - w.idle_since > timeout]
        for worker in stale:
            self._retire(worker)
        return [w.ctype for w in stale]

    def census(self) -> dict:
        """Its workers by type, as the manager's registration and heartbeats carry them."""
        busy = [w.ctype for w in self.workers.values() if w.task is not None]
        return {"warm_containers": [w.ctype for w in self.idle()], "busy_containers": busy,
                "cold_starts": self.cold_starts, "warm_hits": self.warm_hits}

    # --- work ----------------------------------------------------------------

    def idle(self, ctype: str | None = None) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.task is None and w.failure is None
                and (ctype is None or w.ctype == ctype)]

    def assign(self, worker: WorkerHandle, task_id: str, task_bytes: bytes, walltime: float | None) -> None:
        now = time.monotonic()
        worker.task = RunningTask(task_id, now, now + walltime if walltime else None, walltime)
        if self.limits.cpu_seconds:
            worker.task.cpu_at_start = cpu_seconds(worker.pid) or 0.0
        try:
            write_frame(worker.sock, task_bytes)
        except OSError:
            # The worker is already dead; its end-of-stream will be read next and
            # the task reported through the usual worker-death path.
            log.warning("worker %d (pid %d) died before it received task %s", worker.index, worker.pid, task_id)

    def on_readable(self, fd: int) -> list[tuple[str, bytes]]:
        """Read from one worker: (task id, packed result) pairs, including death reports.

        A worker runs one task at a time, so the one frame it may send is its
        current task's result, passed on as it came once its header says so.
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
        if worker.failure is not None:
            return []  # killed already: only its end-of-stream matters now
        try:
            frames = worker.reader.feed(data)
        except FrameTooLarge as exc:
            self._kill(worker, Failure(ErrorKind.PAYLOAD_TOO_LARGE, "PayloadTooLarge",
                                       f"the worker began sending {exc.length / 2**20:.1f} MiB for this task, over the "
                                       f"endpoint's limit of {self.options.max_result_bytes / 2**20:.1f} MiB "
                                       "(max_payload_bytes); it was stopped and replaced"))
            return []
        results = []
        for frame in frames:
            result, problem = _read_result(frame, worker.task)
            if result is None or worker.task is None:
                self._kill(worker, Failure(ErrorKind.WORKER_PROTOCOL, "WorkerProtocolError",
                                           f"the task wrote to its worker's private channel to the manager "
                                           f"({problem}); the worker was replaced"))
                break
            results.append((worker.task.task_id, frame))
            worker.task = None
            worker.idle_since = time.monotonic()
            if result.error_kind == ErrorKind.RESOURCE_LIMIT:  # it exits after this: no more tasks for it
                worker.failure = Failure(ErrorKind.RESOURCE_LIMIT, "WorkerResourceError", "retiring")
        return results

    def check_limits(self) -> None:
        """Kill workers whose task ran over its walltime or CPU time; on_readable reports their exit."""
        now = time.monotonic()
        check_cpu = bool(self.limits.cpu_seconds) and now >= self._next_cpu_check
        if check_cpu:
            self._next_cpu_check = now + CPU_CHECK_PERIOD
        for worker in list(self.workers.values()):
            task = worker.task
            if task is None or worker.failure is not None:
                continue
            if task.deadline and now > task.deadline:
                log.warning("task %s exceeded its walltime of %ss; killing worker pid %d and what it started",
                            task.task_id, task.walltime, worker.pid)
                self._kill(worker, Failure(ErrorKind.WALLTIME_EXCEEDED, "TaskWalltimeExceeded",
                                           f"the task ran longer than its walltime of {task.walltime:g}s and was "
                                           "killed, with every process it started"))
            elif check_cpu and (cpu_seconds(worker.pid) or 0.0) - task.cpu_at_start > (self.limits.cpu_seconds or 0):
                log.warning("task %s used more than %ss of CPU time; killing worker pid %d", task.task_id,
                            self.limits.cpu_seconds, worker.pid)
                self._kill(worker, Failure(ErrorKind.RESOURCE_LIMIT, "WorkerResourceError",
                                           self.limits.cpu_message()))

    def _kill(self, worker: WorkerHandle, failure: Failure) -> None:
        if worker.task is None:
            log.error("worker %d (pid %d), running no task: %s", worker.index, worker.pid, failure.message)
        worker.failure = failure
        _kill_group(worker.pid)

    def _on_worker_exit(self, worker: WorkerHandle) -> list[tuple[str, bytes]]:
        del self.workers[worker.sock.fileno()]
        self.generation += 1
        worker.sock.close()
        # Whatever its tasks left running goes too; and a task that only closed the socket does not keep the worker
        # alive. (Before the wait: until then its pid, which names the group, cannot be reused.)
        _kill_group(worker.pid)
        code = worker.process.wait()
        _remove_container(worker)
        self.replaced += 1
        if self.options.start_type is None and worker.ctype != RAW:
            # Soft routing: the slot stays unused until a task wants a worker (a container that cannot start
            # then fails that task, not an endless loop of restarts).
            log.info("worker %d (pid %d, %s) exited (%s)", worker.index, worker.pid, worker.ctype, describe_exit(code))
        else:
            replacement = self._spawn(worker.ctype)
            log.info("worker %d (pid %d) exited (%s); started worker %d (pid %d)", worker.index, worker.pid,
                     describe_exit(code), replacement.index, replacement.pid)
        task = worker.task
        if task is None:
            return []
        died = f"the worker process running this task died ({describe_exit(code)})"
        if worker.ctype != RAW:
            died = (f"the worker running this task in its container ({worker.ctype[:300]}) ended "
                    f"({describe_exit(code)}) without a result; if the container could not start, the runtime said "
                    "why in the manager's log")
        failure = worker.failure or Failure(ErrorKind.WORKER_DIED, "WorkerDied", died)
        result = Result.failure(task.task_id, failure.kind, failure.message, error_type=failure.error_type,
                                manager=self.manager_id, worker_pid=worker.pid, finished_at=time.time())
        return [(task.task_id, result.pack())]


def _read_result(frame: bytes, task: RunningTask | None) -> tuple[Result | None, str]:
    """The frame's result header if it is the result of the task the worker runs, else (None, why not)."""
    if task is None:
        return None, "it sent a message while running no task"
    try:
        result = Result.peek(frame)
    except ProtocolError as exc:
        return None, f"it sent something that is not a result: {exc}"
    if result.task_id != task.task_id:
        return None, f"it sent a result for task {result.task_id[:60]!r}, not for its own"
    return result, ""


def _kill_group(pid: int) -> None:
    """SIGKILL a worker's process group: the worker and every process its tasks started that stayed in it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove_container(worker: WorkerHandle) -> None:
    """A docker/podman worker's container outlives its killed client: remove it (best effort, logged)."""
    if not worker.container_name:
        return
    runtime = worker.ctype.partition(":")[0]
    try:
        grace = ["--time=0"] if runtime == "podman" else []  # (docker rm has no --time)
        subprocess.run([runtime, "rm", "--force", *grace, worker.container_name], capture_output=True,
                       timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not remove container %s of worker %d: %s", worker.container_name, worker.index, exc)

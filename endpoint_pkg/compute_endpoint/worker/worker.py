"""A worker: runs one task at a time from its manager and answers with the result.

The only component that unpickles user payloads. It talks to its manager over
a stream socket inherited as a file descriptor, so the user function's own
stdout and stderr stay free for its prints.
"""

import contextlib
import errno
import os
import signal
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from .. import serialize
from ..limits import WorkerLimits
from ..procs import die_with_parent
from ..protocol import ErrorKind, Result, Task
from ..protocol.worker_stream import read_frame, write_frame
from .settings import WorkerSettings

_FUNCTION_CACHE_SIZE = 128


class FunctionCache:
    """Deserialized functions by hash: resubmitting a function costs one lookup."""

    def __init__(self, size: int = _FUNCTION_CACHE_SIZE):
        self._size = size
        self._entries: OrderedDict[str, Callable[..., Any]] = OrderedDict()

    def get(self, fn_hash: str, data: bytes) -> Callable[..., Any]:
        fn = self._entries.get(fn_hash)
        if fn is None:
            fn = serialize.load(data)
            self._entries[fn_hash] = fn
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(fn_hash)
        return fn


@contextlib.contextmanager
def mpi_environment(task: Task) -> Iterator[None]:
    """For an MPI task, the variables Parsl's MPI apps read, set while it runs: where its ranks go, and how."""
    if not task.mpi_nodes:
        yield
        return
    nodes = task.mpi_nodes.split(",")
    values = {"PARSL_MPI_PREFIX": task.mpi_prefix, "PARSL_MPI_NODELIST": task.mpi_nodes,
              "PARSL_NUM_NODES": str(len(nodes)), "PARSL_RANKS_PER_NODE": str(task.ranks_per_node),
              "PARSL_NUM_RANKS": str(len(nodes) * task.ranks_per_node)}
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute(task: Task, cache: FunctionCache, max_result_bytes: int, manager_id: str = "",
            plain_arguments: bool = False, limits: WorkerLimits | None = None) -> Result:
    """Run one task. The function's hash is checked against its bytes before anything is unpickled.

    That hash is what ``allowed_functions`` lists and what the cache is keyed
    by, so a task cannot run other code under an allowed hash, nor leave it in
    the cache for the next task that names that hash. With ``plain_arguments``
    (set with ``allowed_functions``) the arguments are loaded as plain data
    only, since unpickling anything else can run the sender's code.
    """
    started = time.time()
    common: dict[str, Any] = {"task_id": task.task_id, "worker_pid": os.getpid(), "manager": manager_id,
                              "started_at": started}
    fn_bytes = task.payload[: task.fn_len]
    if serialize.function_hash(fn_bytes) != task.fn_hash:
        return Result.failure(
            error_kind=ErrorKind.FUNCTION_NOT_ALLOWED, error_type="FunctionHashMismatch", finished_at=time.time(),
            message=f"the function sent is not the one its hash ({task.fn_hash}) names; nothing of it was loaded",
            **common)
    mismatch = _python_mismatch(task, fn_bytes)
    if mismatch:
        return Result.failure(error_kind=ErrorKind.SERIALIZATION, error_type="PythonVersionMismatch",
                              message=mismatch, finished_at=time.time(), **common)
    try:
        fn = cache.get(task.fn_hash, fn_bytes)
        load_arguments = serialize.load_plain_data if plain_arguments else serialize.load
        args, kwargs = load_arguments(task.payload[task.fn_len:])
    except Exception as exc:
        return Result.failure(
            error_kind=ErrorKind.SERIALIZATION, error_type=type(exc).__name__, finished_at=time.time(),
            message=f"the worker could not deserialize the task: {type(exc).__name__}: {exc} "
                    "(are the modules it uses installed where the workers run?)",
            **common,
        )
    try:
        with mpi_environment(task):
            value = fn(*args, **kwargs)
    except BaseException as exc:  # even sys.exit() in user code is reported, not obeyed
        over_limit = _limit_reached(exc, limits or WorkerLimits())
        if over_limit:
            return Result.failure(error_kind=ErrorKind.RESOURCE_LIMIT, error_type="WorkerResourceError",
                                  message=over_limit, finished_at=time.time(), **common)
        return _exception_result(exc, common)
    return _value_result(value, common, max_result_bytes)


def _python_mismatch(task: Task, fn_bytes: bytes) -> str | None:
    """Why a task's by-value code cannot be loaded here, or None: only when the Python versions differ."""
    ours = serialize.python_version()
    if not task.python_version or task.python_version == ours:
        return None
    if serialize.carries_code(fn_bytes):
        what = "the function"
    elif serialize.carries_code(task.payload[task.fn_len:]):
        what = "an argument"
    else:
        return None  # functions and values sent by reference load under any version
    return (f"{what} was sent by value (a lambda, or code defined in __main__ or a notebook) from Python "
            f"{task.python_version}, and this endpoint's workers run Python {ours}; bytecode does not carry "
            f"across Python versions, so it was not loaded. Submit from Python {ours}, or put the code in a "
            "module installed where the workers run, so that it travels by reference")


def _limit_reached(exc: BaseException, limits: WorkerLimits) -> str | None:
    """The limit an exception comes from, said in the operator's terms; None for the task's own errors."""
    if isinstance(exc, MemoryError) and limits.memory_bytes:
        return limits.memory_message()
    if isinstance(exc, OSError) and exc.errno == errno.EAGAIN and limits.processes:
        # What fork() says at the process limit (an unready non-blocking socket says it too, rarely left uncaught).
        return (f"the task could not start another process ({exc}): its worker's user may have at most "
                f"{limits.processes} (engine.worker_limits.processes)")
    return None


def _exception_result(exc: BaseException, common: dict[str, Any]) -> Result:
    exc.__traceback__ = exc.__traceback__.tb_next if exc.__traceback__ else None  # drop execute()'s frame
    kind = type(exc)
    return Result(
        ok=False, error_kind=ErrorKind.EXCEPTION, error_type=f"{kind.__module__}.{kind.__qualname__}",
        error_message=str(exc), traceback=serialize.format_exception(exc),
        payload=serialize.dump_exception(exc), finished_at=time.time(), **common,
    )


def _value_result(value: Any, common: dict[str, Any], max_result_bytes: int) -> Result:
    try:
        data = serialize.dump_value(value)
    except serialize.SerializationError as exc:
        return Result.failure(error_kind=ErrorKind.SERIALIZATION, error_type="SerializationError",
                              message=str(exc), finished_at=time.time(), **common)
    if len(data) > max_result_bytes:
        return Result.failure(
            error_kind=ErrorKind.PAYLOAD_TOO_LARGE, error_type="PayloadTooLarge", finished_at=time.time(),
            message=f"the result is {len(data) / 2**20:.1f} MiB, over the endpoint's limit of "
                    f"{max_result_bytes / 2**20:.1f} MiB (max_payload_bytes)",
            **common,
        )
    return Result(ok=True, payload=data, finished_at=time.time(), **common)


def serve(sock: socket.socket, settings: WorkerSettings) -> None:
    cache = FunctionCache()
    limits = WorkerLimits(settings.memory_limit or None, settings.process_limit or None)
    while True:
        frame = read_frame(sock)
        if frame is None:
            return
        task = Task.unpack(frame)
        result = execute(task, cache, settings.max_result_bytes, settings.manager_id, settings.plain_arguments, limits)
        write_frame(sock, result.pack())
        if result.error_kind == ErrorKind.RESOURCE_LIMIT:
            return  # a process that ran out of memory is not to be trusted with the next task: be replaced


def main(argv: list[str] | None = None) -> int:
    settings = WorkerSettings.from_argv(argv)
    die_with_parent(settings.parent_pid, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal goes to the endpoint, not to us
    sock = socket.socket(fileno=settings.fd)
    if settings.workdir:
        os.chdir(settings.workdir)
    WorkerLimits(settings.memory_limit or None, settings.process_limit or None).apply_to_this_process()
    try:
        serve(sock, settings)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
